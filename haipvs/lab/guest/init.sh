#!/bin/sh
# Second stage of the lab guest, PID 1 on this machine's own filesystem (over 9p or
# hostfs). It gives the guest its own /tmp, /run and /dev/shm (mounting back the host
# directories below them that the command needs, $HAIPVS_LAB_KEEP), loads the kernel modules the
# lab needs (IPVS and its schedulers, veth, bridge, netem, tunnels), runs the
# command the host wrote to $HAIPVS_LAB_RUN/cmd.sh with its output on the virtio
# console (the host streams it), writes the exit status next to it and powers off.
# Powering off is not optional: PID 1 exiting panics the kernel.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# QEMU's first stage hands over its devtmpfs; a UML guest mounts its own here
# (writing to the host's /dev through hostfs would create files on the host).
grep -q " /dev devtmpfs " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# A checkout, virtualenv or run directory under the host's /tmp or /run (the runner
# lists them, comma-separated, in $HAIPVS_LAB_KEEP) would vanish under the tmpfs
# mounted next: hold each on a bind mount in the guest's own /dev, then move it back
# to its path. Bind mounts work over 9p and hostfs alike, and the host sees nothing.
mkdir -p /dev/.lab-keep
kept=""
n=0
for path in $(echo "$HAIPVS_LAB_KEEP" | tr , " "); do
    n=$((n + 1))
    mkdir -p "/dev/.lab-keep/$n" && mount --bind "$path" "/dev/.lab-keep/$n" \
        && kept="$kept $n:$path" \
        || echo "haipvs-lab: cannot hold $path" >/dev/console
done
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
for entry in $kept; do
    path=${entry#*:}
    mkdir -p "$path" && mount --move "/dev/.lab-keep/${entry%%:*}" "$path" \
        || echo "haipvs-lab: cannot mount $path back" >/dev/console
done
mkdir -p /run/netns /run/lock /run/user
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null

# The guest kernel's modules live in the lab cache, not in /lib/modules: point
# modprobe (ours and the kernel's on-demand requests) at them.
mkdir -p /tmp/.lab-modroot/lib/modules
ln -s "$HAIPVS_LAB_MODULES" "/tmp/.lab-modroot/lib/modules/$(uname -r)"
cat > /tmp/.lab-modprobe <<MODPROBE
#!/bin/sh
exec /sbin/modprobe -d /tmp/.lab-modroot "\$@"
MODPROBE
chmod 755 /tmp/.lab-modprobe
echo /tmp/.lab-modprobe > /proc/sys/kernel/modprobe
# One modprobe for all of them: every process start is expensive in an emulated guest.
/tmp/.lab-modprobe -a $(echo "$HAIPVS_LAB_PRELOAD" | tr , " ") 2>/dev/console \
    || echo "haipvs-lab: some modules did not load" >/dev/console

ip link set lo up
hostname haipvs-lab 2>/dev/null
echo "haipvs-lab: init ready" >/dev/console
cd "$HAIPVS_LAB_CWD" 2>/dev/null || cd /
sh "$HAIPVS_LAB_RUN/cmd.sh" </dev/null >"$HAIPVS_LAB_OUTPUT" 2>&1
echo $? > "$HAIPVS_LAB_RUN/rc"
sync
poweroff -f
