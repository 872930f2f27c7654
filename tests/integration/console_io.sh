#!/usr/bin/env bash
# vmm's stdin is the guest console's input, and a terminal on stdin is put in raw
# mode for the run and restored afterwards. Three guest boots:
#  1. stdin is a FIFO: a line written to it once the guest says READY is what the
#     guest's `read` gets; vmm exits 0 after the guest's reboot -f.
#  2. stdin is a pseudo-terminal (util-linux `script`): `stty -g` is the same before
#     and after a run that ends with the guest's reboot.
#  3. the same, stopped by SIGTERM while the guest runs; meanwhile the terminal is
#     seen in raw mode (-icanon -echo -isig).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
guest_test_begin "$0" "$@"

command -v script >/dev/null || fail "script (util-linux) is needed for the terminal checks"
timeout=${GUEST_TIMEOUT:-300}
dir=$(mktemp -d)
at_exit "rm -rf '$dir'"

# start_bg_stdin FILE CMD...: start_bg with CMD's stdin from FILE. A `<` on start_bg
# itself does not reach CMD: bash gives a background command of a non-interactive
# shell /dev/null as stdin unless the `&` command line redirects it.
start_bg_stdin() {
    local file=$1
    shift
    # shellcheck disable=SC2016 # $0 and $@ expand in the inner sh
    start_bg sh -c 'exec <"$0" && exec "$@"' "$file" "$@"
}

# --- 1. Input through a pipe ------------------------------------------------------
# fd 3 keeps a writer open, so vmm does not see end of input before we write.
mkfifo "$dir/in"
exec 3<>"$dir/in"
log=$dir/pipe.log
line='hello from the host 12345'
start=$SECONDS
# The guest's read gives up after 60 s, so input that never arrives fails the GOT
# check below instead of hanging until the timeout.
start_bg_stdin "$dir/in" timeout -k 5 "$timeout" "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" \
    --initrd "$GUEST_DIR/initramfs.cpio.gz" --memory 512M \
    --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"echo READY; read -t 60 -r line; echo GOT=\$line\"" \
    >"$log" 2>&1
pid=$BG_PID
wait_grep "$log" '^READY' "$timeout" "$pid" || { tail -n 30 "$log"; fail "the guest never printed READY"; }
echo "ok: guest ready after $((SECONDS - start)) s; writing '$line' to vmm's stdin"
printf '%s\n' "$line" >&3
rc=0
wait "$pid" || rc=$?
exec 3>&-
echo "pipe run: vmm ran for $((SECONDS - start)) s"
[ "$rc" -eq 0 ] || { tail -n 30 "$log"; fail "vmm exited $rc, want 0 after the guest's reboot -f"; }
check_booted "$log"
check_eq "line the guest read from the console" "$(guest_value "$log" GOT)" "$line"
grep -aq 'guest reset (reboot)' "$log" || fail "vmm did not report the guest's reset"
echo "ok: vmm exited 0 after the guest's reboot"

# --- 2 and 3. stdin on a terminal ---------------------------------------------------
# inner.sh runs on script's pseudo-terminal: it saves the terminal's name and settings,
# runs vmm on it in the background (its PID in pid, so the test can signal vmm itself),
# waits for it (status in rc), and saves the settings again.
cat >"$dir/inner.sh" <<'EOF'
d=$RUN_DIR
tty >"$d/tty"
stty -g >"$d/before"
# A background command of a non-interactive shell gets /dev/null as stdin unless told.
"$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --memory 512M --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$GUEST_RUN\"" </dev/tty 2>&1 &
echo $! >"$d/pid"
rc=0
wait $! || rc=$?
echo $rc >"$d/rc"
stty -g >"$d/after"
EOF
export VMM_BIN GUEST_DIR GUEST_CMDLINE_BASE RUN_DIR GUEST_RUN
# script's own stdin: a FIFO nobody writes to but that stays open (fd 4), so script
# neither forwards input nor sends an end-of-file character into the terminal.
mkfifo "$dir/tty_in"
exec 4<>"$dir/tty_in"

# tty_start NAME 'GUEST COMMAND': starts the run in the background (BG_PID is the
# timeout around script); its files are in $dir/NAME, the terminal output in
# $dir/NAME/typescript.
tty_start() {
    RUN_DIR=$dir/$1 GUEST_RUN=$2
    mkdir "$RUN_DIR"
    # If the test dies, vmm (in script's session, not in our process group) goes too.
    at_exit "[ -s '$RUN_DIR/pid' ] && kill -KILL \$(cat '$RUN_DIR/pid') 2>/dev/null"
    start_bg_stdin "$dir/tty_in" timeout -k 5 "$timeout" \
        script -qfec "bash $dir/inner.sh" "$RUN_DIR/typescript" >/dev/null 2>"$RUN_DIR/script.err"
}

# tty_finish NAME SCRIPT-PID: waits for the run, checks vmm's status and the settings.
tty_finish() {
    local d=$dir/$1 rc=0
    wait "$2" || rc=$?
    [ "$rc" -eq 0 ] || { tail -n 30 "$d/typescript" "$d/script.err"; fail "$1: script/inner shell exited $rc"; }
    check_eq "$1: vmm exit status" "$(cat "$d/rc")" 0
    [ -s "$d/before" ] || fail "$1: no terminal settings saved before vmm"
    echo "ok: $1: terminal $(cat "$d/tty"), settings before vmm: $(cat "$d/before")"
    check_eq "$1: stty -g after vmm" "$(cat "$d/after")" "$(cat "$d/before")"
}

# 2. The guest reboots by itself.
start=$SECONDS
tty_start reboot 'echo hi'
tty_pid=$BG_PID
tty_finish reboot "$tty_pid"
echo "terminal run: $((SECONDS - start)) s"
grep -aq '^hi' "$dir/reboot/typescript" || { tail -n 30 "$dir/reboot/typescript"; fail "reboot: the guest's output is not on the terminal"; }
grep -aq 'guest reset (reboot)' "$dir/reboot/typescript" || fail "reboot: vmm did not report the guest's reset"

# 3. SIGTERM while the guest runs.
start=$SECONDS
tty_start sigterm 'sleep 600'
tty_pid=$BG_PID
d=$dir/sigterm
wait_grep "$d/typescript" '^VMM-GUEST-UP' "$timeout" ||
    { tail -n 30 "$d/typescript" "$d/script.err"; fail "sigterm: the guest never reached /init"; }
echo "ok: sigterm: guest up after $((SECONDS - start)) s"
vmm_pid=$(cat "$d/pid")
[ "$(cat "/proc/$vmm_pid/comm" 2>/dev/null)" = vmm ] || fail "sigterm: PID $vmm_pid is not vmm"
during=$(stty -a -F "$(cat "$d/tty")")
for flag in -icanon -echo -isig; do
    [[ " ${during//$'\n'/ } " == *" $flag "* ]] || { echo "$during"; fail "sigterm: terminal not raw while vmm runs: $flag missing"; }
done
echo "ok: sigterm: terminal is raw while vmm runs (-icanon -echo -isig)"
kill -TERM "$vmm_pid"
tty_finish sigterm "$tty_pid"
echo "terminal run with SIGTERM: $((SECONDS - start)) s"
grep -aq 'stopped by signal' "$d/typescript" || fail "sigterm: vmm gave no reason for stopping"
exec 4>&-
pass "stdin is the guest console's input; the terminal is raw during the run and restored after reboot and SIGTERM"
