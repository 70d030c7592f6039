#!/usr/bin/env bash
# tune.sh [server|load|both]: apply tuning/sysctl-server.conf and/or tuning/sysctl-load.conf to the
# running kernel now (default: both), one `sysctl -w key=value` per line, and report the open-files
# limit.
#
# For every key it prints the value before and after and one of:
#   set        written, and the kernel now shows the wanted value
#   unchanged  already the wanted value, nothing written (so running it again changes nothing)
#   kept       a limit that is already higher than the file asks for; never lowered
#   guarded    not written because it could hurt the machine (see below)
#   refused    the kernel refused the write, or kept another value (not root, a global key inside a
#              container, a value out of range)
#   absent     the key does not exist here (a module not loaded, a key of another kernel version,
#              a global key hidden in a container's network namespace)
# and a summary at the end. With both, a key that both files set to the same value is applied and
# shown once. Refused and absent keys are reported, not fatal: the exit status is 0
# unless a sysctl file is missing (1) or the argument is wrong (2).
#
# Safety rules, so it can run on a shared machine:
# - limits (file-max, nr_open, somaxconn, backlogs, orphans, time-wait buckets, conntrack) are only
#   ever raised;
# - net.ipv4.tcp_mem in the files is sized for 64 GiB and is scaled here to this machine's RAM; it
#   is not written if the result would not leave room above the TCP buffer memory in use now;
# - net.ipv4.tcp_syncookies is never set to 0.
#
# Not persistent: install the files under /etc/sysctl.d/ for that (see tuning/README.md).
set -euo pipefail

usage() {
  echo "usage: scripts/tune.sh [server|load|both]   (default: both)"
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${1:-both}
case $MODE in
  server) SIDES=(server) ;;
  load) SIDES=(load) ;;
  both) SIDES=(server load) ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

missing=0
for side in "${SIDES[@]}"; do
  f=$ROOT/tuning/sysctl-$side.conf
  if [ ! -r "$f" ]; then
    echo "tune: missing $f" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1

# Limits that are only ever raised.
RAISE_ONLY=" fs.file-max fs.nr_open net.core.somaxconn net.ipv4.tcp_max_syn_backlog \
net.core.netdev_max_backlog net.ipv4.tcp_max_orphans net.ipv4.tcp_max_tw_buckets \
net.netfilter.nf_conntrack_max "
TCP_MEM_REFERENCE_KB=$((64 * 1024 * 1024)) # the files' tcp_mem is sized for 64 GiB

SYSCTL=$(command -v sysctl || true)
[ -n "$SYSCTL" ] || [ ! -x /usr/sbin/sysctl ] || SYSCTL=/usr/sbin/sysctl
[ -n "$SYSCTL" ] || [ ! -x /sbin/sysctl ] || SYSCTL=/sbin/sysctl

norm() { # collapse tabs and runs of spaces, trim
  local v
  v=$(printf '%s' "$1" | tr -s ' \t' '  ')
  v=${v# }
  printf '%s' "${v% }"
}

proc_path() { # net.ipv4.tcp_mem -> /proc/sys/net/ipv4/tcp_mem
  printf '/proc/sys/%s' "${1//.//}"
}

read_key() { # prints the normalized value, or fails when the key does not exist
  local p
  p=$(proc_path "$1")
  [ -e "$p" ] || return 1
  norm "$(cat "$p" 2>/dev/null)"
}

write_key() { # key value; prints the error on failure
  if [ -n "$SYSCTL" ]; then
    { "$SYSCTL" -w "$1=$2" >/dev/null; } 2>&1
  else
    { printf '%s\n' "$2" >"$(proc_path "$1")"; } 2>&1
  fi
}

tcp_mem_in_use() { # pages of TCP buffer memory in use now (/proc/net/sockstat "TCP: ... mem N")
  awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat
}

scale_tcp_mem() { # "low pressure high" for 64 GiB -> for this machine's MemTotal
  local mem_kb v out=()
  mem_kb=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)
  for v in $1; do
    out+=("$((v * mem_kb / TCP_MEM_REFERENCE_KB))")
  done
  echo "${out[*]}"
}

declare -A WANTED=()
declare -A WANTED_FROM=()
SET=() UNCHANGED=() KEPT=() GUARDED=() REFUSED=() ABSENT=() CONFLICTS=()

report() { # side key before after status [note]
  printf '%-8s %-36s %-26s -> %-26s %s\n' "[$1]" "$2" "$3" "$4" "$5${6:+: $6}"
}

apply() { # side key wanted
  local side=$1 key=$2 want=$3 before after err note="" in_use lo pr hi
  if [ -n "${WANTED[$key]:-}" ]; then
    if [ "${WANTED[$key]}" = "$want" ]; then
      return # same key, same value, already applied from the other file
    fi
    CONFLICTS+=("$key (${WANTED_FROM[$key]}: ${WANTED[$key]}, $side: $want)")
  fi
  WANTED[$key]=$want
  WANTED_FROM[$key]=$side

  if ! before=$(read_key "$key"); then
    report "$side" "$key" "-" "-" absent "not in this kernel or namespace"
    ABSENT+=("$key")
    return
  fi

  case $key in
    net.ipv4.tcp_mem)
      note="file value $want is for 64 GiB"
      want=$(scale_tcp_mem "$want")
      note="$note, scaled to this machine: $want"
      in_use=$(tcp_mem_in_use)
      in_use=${in_use:-0}
      read -r lo pr hi <<<"$want"
      if [ "$lo" -le $((in_use * 2)) ] || [ "$lo" -ge "$pr" ] || [ "$pr" -ge "$hi" ]; then
        report "$side" "$key" "$before" "$before" guarded \
          "scaled value $want too close to the $in_use pages in use now (or not increasing)"
        GUARDED+=("$key")
        return
      fi
      ;;
    net.ipv4.tcp_syncookies)
      if [ "$want" = 0 ]; then
        report "$side" "$key" "$before" "$before" guarded "never disabling SYN cookies"
        GUARDED+=("$key")
        return
      fi
      ;;
  esac

  if [ "$before" = "$want" ]; then
    report "$side" "$key" "$before" "$before" unchanged "$note"
    UNCHANGED+=("$key")
    return
  fi
  if [[ $RAISE_ONLY == *" $key "* ]] && [[ $before =~ ^[0-9]+$ ]] && [[ $want =~ ^[0-9]+$ ]] &&
    [ "$before" -ge "$want" ]; then
    report "$side" "$key" "$before" "$before" kept "already >= $want, limits are only raised"
    KEPT+=("$key")
    return
  fi

  if ! err=$(write_key "$key" "$want"); then
    after=$(read_key "$key" || echo "?")
    report "$side" "$key" "$before" "$after" refused "$(printf '%s' "$err" | tr '\n' ' ')"
    REFUSED+=("$key")
    return
  fi
  after=$(read_key "$key" || echo "?")
  if [ "$after" = "$want" ]; then
    report "$side" "$key" "$before" "$after" set "$note"
    SET+=("$key")
  else
    report "$side" "$key" "$before" "$after" refused "the kernel kept $after instead of $want"
    REFUSED+=("$key")
  fi
}

apply_file() { # side file
  local side=$1 file=$2 line key val
  while IFS= read -r line || [ -n "$line" ]; do
    line=$(norm "$line")
    case $line in
      '' | '#'* | ';'*) continue ;;
      *=*) ;;
      *)
        echo "tune: $file: ignoring line without '=': $line" >&2
        continue
        ;;
    esac
    key=$(norm "${line%%=*}")
    key=${key#-} # sysctl.d's "-key = value" (ignore errors) is how every line is treated here
    val=$(norm "${line#*=}")
    apply "$side" "$key" "$val"
  done <"$file"
}

echo "tune: $(uname -r), $(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, uid $(id -u)${SYSCTL:+, $SYSCTL}"
[ "$(id -u)" = 0 ] || echo "tune: not root: writes will be refused"
printf '%-8s %-36s %-26s    %-26s %s\n' "" key before after result
for side in "${SIDES[@]}"; do
  apply_file "$side" "$ROOT/tuning/sysctl-$side.conf"
done

echo
echo "open files (RLIMIT_NOFILE) of this shell: soft $(ulimit -Sn), hard $(ulimit -Hn); fs.nr_open $(read_key fs.nr_open || echo '?')"
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
if [ "$soft" = "$hard" ]; then
  echo "  soft limit: already at the hard limit"
else
  echo "  soft limit: can be raised to $hard by the process itself (ulimit -n $hard; myriad does it at start)"
fi
if [ "$hard" = unlimited ]; then
  echo "  hard limit: unlimited"
elif (ulimit -Hn "$((hard + 1))") 2>/dev/null; then
  echo "  hard limit: can be raised here (up to fs.nr_open): use limits.conf / LimitNOFILE / prlimit"
else
  cap=$(awk '$1 == "CapEff:" { print $2 }' /proc/self/status)
  why="needs CAP_SYS_RESOURCE"
  if [ -n "$cap" ] && (((0x$cap >> 24) & 1)); then
    why="at fs.nr_open"
  elif [ -n "$cap" ]; then
    why="this process lacks CAP_SYS_RESOURCE (CapEff $cap)"
    [ "$(id -u)" != 0 ] || why="$why: dropped for this container, so even root cannot raise it"
  fi
  echo "  hard limit: cannot be raised here ($why); run several processes instead (tuning/README.md)"
fi

echo
summary_line() { # label keys... (each key once, in order)
  local -A seen=()
  local out=() k
  for k in "${@:2}"; do
    [ -z "${seen[$k]:-}" ] || continue
    seen[$k]=1
    out+=("$k")
  done
  printf '  %-10s %d%s\n' "$1:" "${#out[@]}" "${out[*]:+ (${out[*]})}"
}
echo "summary ($MODE), keys counted once:"
summary_line set "${SET[@]}"
summary_line unchanged "${UNCHANGED[@]}"
summary_line kept "${KEPT[@]}"
summary_line guarded "${GUARDED[@]}"
summary_line refused "${REFUSED[@]}"
summary_line absent "${ABSENT[@]}"
if [ "${#CONFLICTS[@]}" -gt 0 ]; then
  echo "  conflicts between the files (the later one was applied): ${CONFLICTS[*]}"
fi
exit 0
