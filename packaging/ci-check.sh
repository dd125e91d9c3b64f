#!/bin/bash
# CI check of the Debian package (issue 8, "Must show"): build the .deb, install it
# with dpkg -i on this machine, and check it from the installed files only.
#
#   packaging/ci-check.sh [--keep] [--deb FILE]
#
#   --keep      leave the package installed (default: purge it at the end, unless
#               it was installed before this script ran)
#   --deb FILE  check an existing .deb instead of building one
#
# Checks, each fatal:
#   1. packaging/build-deb.sh builds the package
#   2. dpkg -i installs it (and again, as an upgrade over itself)
#   3. /usr/bin/haipvs check-config /etc/haipvs/haipvs.yaml passes, also as the
#      daemon's own user (the conffile's permissions let it read the file)
#   4. every sub-command answers --help; the man page renders
#   5. vrrp/checkers are importable from /opt/haipvs only, not from the system python
#   6. import-keepalived from the installed files gives a config check-config accepts
#   7. the installed Prometheus rules pass promtool check rules, the dashboard is JSON,
#      the config schema and the bash/zsh completion are installed
#   7b. systemd-analyze verify accepts the installed unit
#   8. systemd-analyze security: the exposure is printed and must not exceed
#      HAIPVS_MAX_EXPOSURE (default 2.5; packaging/README.md gives the measured figure)
#   9. dpkg --purge removes /opt/haipvs and /usr/bin/haipvs
# Needs root (dpkg). Exit status 0 only if every check passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEEP=0
DEB=
MAX_EXPOSURE=${HAIPVS_MAX_EXPOSURE:-2.5}
UNIT=/lib/systemd/system/haipvs.service
CONF=/etc/haipvs/haipvs.yaml

while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1; shift ;;
        --deb) DEB=$2; shift 2 ;;
        -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ci-check: unknown argument $1" >&2; exit 2 ;;
    esac
done

STEP=0
step() { STEP=$((STEP + 1)); echo "ci-check: [$STEP] $*"; }
fail() { echo "ci-check: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
WORK=$(mktemp -d /tmp/haipvs-ci.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

WAS_INSTALLED=0
if dpkg-query -W -f '${Status}' haipvs 2>/dev/null | grep -q 'install ok installed'; then
    WAS_INSTALLED=1
fi

if [ -z "$DEB" ]; then
    step "build the package"
    DEB=$("$ROOT/packaging/build-deb.sh" -o "$WORK/dist" | tail -n 1) || fail "build-deb.sh failed"
fi
[ -f "$DEB" ] || fail "no package at $DEB"
echo "ci-check: package $DEB ($(du -h "$DEB" | cut -f1))"

step "dpkg -i"
dpkg -i "$DEB" || fail "dpkg -i $DEB failed"
dpkg-query -W -f '${Status}\n' haipvs | grep -q 'install ok installed' \
    || fail "haipvs is not 'install ok installed' after dpkg -i"
[ "$(readlink /usr/bin/haipvs)" = /opt/haipvs/bin/haipvs ] \
    || fail "/usr/bin/haipvs does not point at /opt/haipvs/bin/haipvs"
dpkg-query --control-show haipvs conffiles 2>/dev/null | grep -qx "$CONF" \
    || grep -qx "$CONF" /var/lib/dpkg/info/haipvs.conffiles \
    || fail "$CONF is not a conffile"

step "haipvs check-config $CONF (installed files)"
/usr/bin/haipvs check-config "$CONF" || fail "check-config refused the shipped $CONF"
runuser -u haipvs -- /usr/bin/haipvs check-config "$CONF" \
    || fail "the haipvs user cannot check $CONF (permissions?)"
stat -c '%U:%G %a' "$CONF" | grep -qx 'root:haipvs 640' \
    || fail "$CONF is $(stat -c '%U:%G %a' "$CONF"), expected root:haipvs 640"

step "--help of every command, and the man page"
/usr/bin/haipvs --help >/dev/null || fail "haipvs --help"
for command in run check-config status lab import-keepalived; do
    /usr/bin/haipvs "$command" --help >/dev/null || fail "haipvs $command --help"
done
gzip -t /usr/share/man/man1/haipvs.1.gz || fail "the man page is not valid gzip"
if command -v man >/dev/null; then
    for section in NAME SYNOPSIS COMMANDS FILES; do
        MANWIDTH=80 man -l /usr/share/man/man1/haipvs.1.gz 2>/dev/null | grep -q "^$section" \
            || fail "the man page has no $section section"
    done
fi

step "the project lives in /opt/haipvs only"
# From /, so the checkout in the current directory cannot shadow the installed files.
where=$(cd / && /opt/haipvs/bin/python -c 'import haipvs, vrrp, checkers; print(haipvs.__file__, vrrp.__file__, checkers.__file__)') \
    || fail "the venv cannot import haipvs, vrrp and checkers"
for path in $where; do
    case "$path" in /opt/haipvs/*) ;; *) fail "$path is outside /opt/haipvs" ;; esac
done
for module in haipvs vrrp checkers; do
    if (cd / && /usr/bin/python3 -c "import $module" 2>/dev/null); then
        fail "the system python imports '$module': it leaked into a shared site-packages"
    fi
done

step "import-keepalived with the installed files"
cat > "$WORK/keepalived.conf" <<'EOF'
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        198.51.100.10/24
    }
}
virtual_server 198.51.100.10 80 {
    delay_loop 5
    lb_algo wlc
    lb_kind NAT
    protocol TCP
    real_server 10.0.0.11 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
EOF
/usr/bin/haipvs import-keepalived "$WORK/keepalived.conf" > "$WORK/imported.yaml" \
    || fail "import-keepalived failed"
/usr/bin/haipvs check-config "$WORK/imported.yaml" || fail "check-config refused the import"

step "the shipped alerting rules, dashboard, config schema and shell completion"
RULES=/usr/share/haipvs/prometheus/haipvs-alerts.yml
DASHBOARD=/usr/share/haipvs/grafana/haipvs-dashboard.json
[ -f "$RULES" ] && [ -f "$DASHBOARD" ] || fail "$RULES or $DASHBOARD is not installed"
/opt/haipvs/bin/python -c 'import json, sys; json.load(open(sys.argv[1]))' "$DASHBOARD" \
    || fail "$DASHBOARD is not JSON"
command -v promtool >/dev/null \
    || fail "promtool is missing (apt-get install -y prometheus)"
promtool check rules "$RULES" || fail "promtool check rules $RULES"
[ -f /usr/share/haipvs/haipvs.schema.json ] || fail "the config's JSON Schema is not installed"
bash -c 'source /usr/share/bash-completion/completions/haipvs && complete -p haipvs' >/dev/null \
    || fail "the bash completion does not load"
[ -f /usr/share/zsh/vendor-completions/_haipvs ] || fail "the zsh completion is not installed"

step "systemd-analyze verify $UNIT"
command -v systemd-analyze >/dev/null \
    || fail "systemd-analyze is missing (apt-get install -y systemd)"
verify_out=$(systemd-analyze verify "$UNIT" 2>&1) || { echo "$verify_out" >&2; fail "systemd-analyze verify"; }
# verify also reports problems of other units it loads; only ours matter here.
if echo "$verify_out" | grep -q '^haipvs.service'; then
    echo "$verify_out" >&2
    fail "systemd-analyze verify reported problems in haipvs.service"
fi

step "systemd-analyze security haipvs.service"
# --offline reads the unit file: no running systemd is needed (PID 1 here may not be).
security=$(systemd-analyze security --offline=true "$UNIT" 2>&1) \
    || { echo "$security" >&2; fail "systemd-analyze security"; }
echo "$security" | grep -E '^✗' || true
exposure_line=$(echo "$security" | grep 'Overall exposure level')
echo "ci-check: $exposure_line"
exposure=$(echo "$exposure_line" | sed -E 's/.*: ([0-9.]+) .*/\1/')
awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }' \
    || fail "exposure $exposure is above $MAX_EXPOSURE"

step "reinstall over itself (upgrade path)"
echo "# an operator's edit" >> "$CONF"
dpkg -i --force-confold "$DEB" || fail "dpkg -i over an installed package failed"
tail -n 1 "$CONF" | grep -q "an operator's edit" || fail "the upgrade replaced an edited conffile"
sed -i '$d' "$CONF"

if [ "$KEEP" = 1 ] || [ "$WAS_INSTALLED" = 1 ]; then
    echo "ci-check: leaving haipvs installed"
else
    step "dpkg --purge haipvs"
    dpkg --purge haipvs || fail "dpkg --purge failed"
    [ ! -e /opt/haipvs ] || fail "/opt/haipvs is left after purge"
    [ ! -e /usr/bin/haipvs ] && [ ! -L /usr/bin/haipvs ] || fail "/usr/bin/haipvs is left after purge"
    [ ! -e "$CONF" ] || fail "$CONF is left after purge"
fi
echo "ci-check: OK ($exposure_line)"
