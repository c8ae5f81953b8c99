# Helpers shared by deploy/kafka/common.sh and deploy/postgres/common.sh (sourced, not run).

# Print the pid on the first line of pid file $1 if it names a live process whose command
# line matches the pattern $2 (a zombie or a recycled pid has another command line).
live_pid() {
    local pid
    [[ -f $1 ]] || return 1
    pid=$(head -n1 "$1" 2>/dev/null)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "$2" || return 1
    echo "$pid"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
