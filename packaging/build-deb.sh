#!/bin/bash
# Build the haipvs Debian package from this checkout.
#
#   packaging/build-deb.sh [-o OUTDIR] [--ref GIT_REF]
#
# The package holds the project in its own virtual environment under /opt/haipvs
# (issue 8: the top-level names `vrrp` and `checkers` must never land in a shared
# site-packages), /usr/bin/haipvs, the conffile /etc/haipvs/haipvs.yaml (from
# etc/haipvs.yaml), the hardened unit packaging/haipvs.service, the man page
# packaging/haipvs.1, the migration guide, and under /usr/share/haipvs the Prometheus
# alerting rules, the Grafana dashboard and the config's JSON Schema, and bash and zsh
# completion.
#
# A virtualenv is not relocatable (its scripts name their interpreter by absolute
# path), so it is built AT /opt/haipvs: in a private mount namespace, the staging
# directory is bind-mounted on /opt/haipvs, which the host never sees. Where
# unshare(1) is refused (an unprivileged container), the venv is built in the
# staging directory and its paths are rewritten to /opt/haipvs afterwards
# (HAIPVS_BUILD_MODE=rewrite forces that path; =namespace forces the first).
#
# Dependencies are pinned to the versions installed in the checkout's .venv, the
# ones the test suite ran against, when that venv exists.
#
# By default the working tree is packaged (what CI checked out); --ref REF packages
# a commit instead (git archive), ignoring uncommitted files.
#
# The last line on stdout is the path of the .deb.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=$ROOT/dist
REF=
PREFIX=/opt/haipvs
MODE=${HAIPVS_BUILD_MODE:-auto}

usage() {
    sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        -o|--output) OUTDIR=$2; shift 2 ;;
        --ref) REF=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "build-deb: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

log() { echo "build-deb: $(date +%T) $*" >&2; }
die() { echo "build-deb: error: $*" >&2; exit 1; }

for tool in dpkg-deb dpkg gzip; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# The interpreter the package depends on: Debian's, by its versioned name, so the
# venv keeps working when /usr/bin/python3 later points at another minor version.
PYTHON=${HAIPVS_BUILD_PYTHON:-/usr/bin/python3}
PYTHON=$(readlink -f "$PYTHON")
[ -x "$PYTHON" ] || die "no interpreter at $PYTHON"
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$PYTHON lacks venv/ensurepip (apt-get install python${PYVER}-venv)"

WORK=$(mktemp -d /tmp/haipvs-deb.XXXXXX)
CREATED_MOUNTPOINT=
cleanup() {
    if [ -n "$CREATED_MOUNTPOINT" ]; then rmdir "$PREFIX" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- sources --------------------------------------------------------------------------
SRC=$ROOT
if [ -n "$REF" ]; then
    SRC=$WORK/src
    mkdir -p "$SRC"
    git -C "$ROOT" archive "$REF" | tar -x -C "$SRC"
fi
for f in pyproject.toml etc/haipvs.yaml packaging/haipvs.service packaging/haipvs.1 \
         etc/prometheus/haipvs-alerts.yml etc/grafana/haipvs-dashboard.json etc/haipvs.schema.json; do
    [ -f "$SRC/$f" ] || die "missing $f in $SRC"
done

VERSION=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$SRC/pyproject.toml")
DEBVERSION="${VERSION}-${DEB_REVISION:-1}"
ARCH=$(dpkg --print-architecture)
DEB=$OUTDIR/haipvs_${DEBVERSION}_${ARCH}.deb
log "haipvs $DEBVERSION ($ARCH), python $PYVER, from ${REF:-the working tree}"

# --- the wheel ------------------------------------------------------------------------
# Built from a copy, so build artefacts never land in the checkout.
mkdir -p "$WORK/wheel-src" "$WORK/wheels"
tar -C "$SRC" --exclude=.venv --exclude=.git --exclude=dist --exclude=build \
    --exclude=.lab-cache --exclude='__pycache__' --exclude='.*_cache' -cf - . \
    | tar -C "$WORK/wheel-src" -xf -
log "building the wheel"
"$PYTHON" -m venv "$WORK/buildenv"
"$WORK/buildenv/bin/python" -m pip install --quiet --disable-pip-version-check build >&2 \
    || die "cannot install the 'build' frontend"
"$WORK/buildenv/bin/python" -m build --wheel --outdir "$WORK/wheels" "$WORK/wheel-src" >&2 \
    || die "wheel build failed"
WHEEL=$(ls "$WORK"/wheels/haipvs-*.whl)

CONSTRAINTS=$WORK/constraints.txt
: > "$CONSTRAINTS"
if [ -x "$ROOT/.venv/bin/python" ]; then
    "$ROOT/.venv/bin/python" -m pip freeze --exclude-editable 2>/dev/null \
        | grep -v -i '^haipvs[= @]' > "$CONSTRAINTS" || true
fi

# --- the venv at its final path ---------------------------------------------------------
PKG=$WORK/pkg
mkdir -p "$PKG$PREFIX"
log "installing into $PREFIX"

install_venv() {  # $1: the path the venv is created at
    "$PYTHON" -m venv "$1"
    "$1/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$CONSTRAINTS" "$WHEEL" >&2
}

if [ "$MODE" = auto ]; then
    if unshare --mount --propagation private true 2>/dev/null; then MODE=namespace; else MODE=rewrite; fi
fi
case "$MODE" in
    namespace)
        if [ ! -e "$PREFIX" ]; then mkdir -p "$PREFIX"; CREATED_MOUNTPOINT=1; fi
        export -f install_venv
        export PYTHON WHEEL CONSTRAINTS
        unshare --mount --propagation private -- bash -euo pipefail -c '
            mount --bind "$1" "$2"
            install_venv "$2"
        ' _ "$PKG$PREFIX" "$PREFIX" || die "venv build in a private mount namespace failed"
        ;;
    rewrite)
        install_venv "$PKG$PREFIX"
        # Scripts and pyvenv.cfg name the staging path; point them at the real one.
        grep -rlI --null -F "$PKG$PREFIX" "$PKG$PREFIX" \
            | xargs -0 -r sed -i "s#$PKG$PREFIX#$PREFIX#g"
        # Byte code records its source path: compile as if at $PREFIX.
        find "$PKG$PREFIX" -name __pycache__ -type d -prune -exec rm -rf {} +
        "$PYTHON" -m compileall -q -s "$PKG" -p / "$PKG$PREFIX/lib" >/dev/null
        ;;
    *) die "HAIPVS_BUILD_MODE must be auto, namespace or rewrite" ;;
esac
[ -x "$PKG$PREFIX/bin/haipvs" ] || die "the venv has no bin/haipvs"
# pip records where the wheel came from (a temporary file): not worth shipping.
for url in "$PKG$PREFIX"/lib/python*/site-packages/haipvs-*.dist-info/direct_url.json; do
    [ -f "$url" ] || continue
    sed -i '/direct_url.json/d' "$(dirname "$url")/RECORD"
    rm -f "$url"
done
if grep -rlI -F "$WORK" "$PKG$PREFIX" >/dev/null; then
    die "the venv still names the build directory: $(grep -rlI -F "$WORK" "$PKG$PREFIX" | head -3)"
fi

log "assembling the package"
# --- the rest of the file tree -------------------------------------------------------------
install -d -m 0755 "$PKG/usr/bin" "$PKG/etc/haipvs" "$PKG/lib/systemd/system" \
    "$PKG/usr/share/man/man1" "$PKG/usr/share/doc/haipvs/examples" \
    "$PKG/usr/lib/modules-load.d" "$PKG/DEBIAN"
ln -s "$PREFIX/bin/haipvs" "$PKG/usr/bin/haipvs"
install -m 0644 "$SRC/etc/haipvs.yaml" "$PKG/etc/haipvs/haipvs.yaml"
install -m 0644 "$SRC/packaging/haipvs.service" "$PKG/lib/systemd/system/haipvs.service"
gzip -9n -c "$SRC/packaging/haipvs.1" > "$PKG/usr/share/man/man1/haipvs.1.gz"
chmod 0644 "$PKG/usr/share/man/man1/haipvs.1.gz"
# Observability: Prometheus alerting rules and a Grafana dashboard (docs/observability.md).
install -d -m 0755 "$PKG/usr/share/haipvs/prometheus" "$PKG/usr/share/haipvs/grafana"
install -m 0644 "$SRC/etc/prometheus/haipvs-alerts.yml" "$PKG/usr/share/haipvs/prometheus/"
install -m 0644 "$SRC/etc/grafana/haipvs-dashboard.json" "$PKG/usr/share/haipvs/grafana/"
# The config's JSON Schema (haipvs schema), for editors: yaml-language-server modeline.
install -m 0644 "$SRC/etc/haipvs.schema.json" "$PKG/usr/share/haipvs/haipvs.schema.json"
# Shell completion, generated from the packaged program's own parser (haipvs completion).
install -d -m 0755 "$PKG/usr/share/bash-completion/completions" "$PKG/usr/share/zsh/vendor-completions"
"$PKG$PREFIX/bin/python" -m haipvs completion bash > "$PKG/usr/share/bash-completion/completions/haipvs" \
    || die "haipvs completion bash failed"
"$PKG$PREFIX/bin/python" -m haipvs completion zsh > "$PKG/usr/share/zsh/vendor-completions/_haipvs" \
    || die "haipvs completion zsh failed"
chmod 0644 "$PKG/usr/share/bash-completion/completions/haipvs" "$PKG/usr/share/zsh/vendor-completions/_haipvs"
# IPVS is a module; load it at boot so the first netlink request finds the family.
printf '# haipvs programs IPVS over generic netlink\nip_vs\n' > "$PKG/usr/lib/modules-load.d/haipvs.conf"
for doc in README.md docs/migrating-from-keepalived.md docs/config.md docs/observability.md; do
    if [ -f "$SRC/$doc" ]; then install -m 0644 "$SRC/$doc" "$PKG/usr/share/doc/haipvs/"; fi
done
if [ -d "$SRC/etc/examples" ]; then
    find "$SRC/etc/examples" -maxdepth 1 -name '*.yaml' -exec install -m 0644 {} "$PKG/usr/share/doc/haipvs/examples/" \;
fi
cat > "$PKG/usr/share/doc/haipvs/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: haipvs

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
 The Python dependencies bundled under /opt/haipvs keep their own licenses, listed
 in each one's dist-info directory.
EOF

# --- control files ---------------------------------------------------------------------
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat > "$PKG/DEBIAN/control" <<EOF
Package: haipvs
Version: $DEBVERSION
Architecture: $ARCH
Maintainer: haipvs developers <haipvs@localhost>
Installed-Size: $INSTALLED_SIZE
Depends: python${PYVER}, libc6 (>= 2.28), iproute2, adduser
Recommends: ipvsadm
Suggests: keepalived
Section: net
Priority: optional
Description: high-availability director for Linux Virtual Server (IPVS)
 haipvs keeps virtual addresses on one of a pair of directors with VRRP
 (interoperable with keepalived on the wire), health-checks real servers and
 reconciles the kernel's IPVS table with its configuration. It replaces
 keepalived one director at a time: "haipvs import-keepalived" translates a
 keepalived.conf and lists what does not translate.
 .
 The program and its Python dependencies live in their own virtual environment
 under /opt/haipvs; /usr/bin/haipvs is the command.
EOF
echo /etc/haipvs/haipvs.yaml > "$PKG/DEBIAN/conffiles"

cat > "$PKG/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd haipvs >/dev/null; then
        adduser --system --group --home /var/lib/haipvs --no-create-home \
            --gecos "haipvs director" --quiet haipvs
    fi
    # The config may hold the API token: readable by the daemon's group only.
    if ! dpkg-statoverride --list /etc/haipvs >/dev/null; then
        dpkg-statoverride --update --add root haipvs 0750 /etc/haipvs
    fi
    if ! dpkg-statoverride --list /etc/haipvs/haipvs.yaml >/dev/null; then
        dpkg-statoverride --update --add root haipvs 0640 /etc/haipvs/haipvs.yaml
    fi
    modprobe -q ip_vs 2>/dev/null || true
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    # Not enabled or started here: a director must not take VIPs with an unedited
    # example config, and an upgrade restart is a failover the operator schedules.
    if [ -z "$2" ]; then
        echo "haipvs: edit /etc/haipvs/haipvs.yaml, check it with"
        echo "  haipvs check-config /etc/haipvs/haipvs.yaml"
        echo "then: systemctl enable --now haipvs"
    elif [ -d /run/systemd/system ] && systemctl is-active --quiet haipvs.service; then
        echo "haipvs: upgraded; the running daemon keeps the old code until"
        echo "  systemctl restart haipvs   (one director at a time)"
    fi
fi
exit 0
EOF

cat > "$PKG/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    # A graceful stop hands the VIPs to the peer (priority-0 advert).
    systemctl stop haipvs.service >/dev/null 2>&1 || true
fi
exit 0
EOF

cat > "$PKG/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
case "$1" in
    remove|purge)
        # Byte code the interpreter may have written at run time is not dpkg's.
        rm -rf /opt/haipvs
        if [ -d /run/systemd/system ]; then
            systemctl daemon-reload >/dev/null 2>&1 || true
        fi
        ;;
esac
if [ "$1" = purge ]; then
    for path in /etc/haipvs/haipvs.yaml /etc/haipvs; do
        if dpkg-statoverride --list "$path" >/dev/null 2>&1; then
            dpkg-statoverride --remove "$path"
        fi
    done
    rm -rf /var/lib/haipvs
    # The haipvs user is kept (Debian policy: files it owned may remain).
fi
exit 0
EOF
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/prerm" "$PKG/DEBIAN/postrm"

(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -print0 \
    | sed -z 's#^\./##' | grep -z -v '^etc/' | sort -z | xargs -0 md5sum) > "$PKG/DEBIAN/md5sums"

# --- build -----------------------------------------------------------------------------
find "$PKG" -type d -exec chmod 0755 {} +
mkdir -p "$OUTDIR"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >&2
log "built $DEB ($(du -h "$DEB" | cut -f1))"
echo "$DEB"
