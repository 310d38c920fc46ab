#!/bin/sh
# Write a node snapshot (docs/snapshots.md) with only a shell and the standard tools:
# the same files, from the same commands, as `fwsim collect`. For nodes where the fwsim
# binary is not at hand (`kubectl debug node/NAME -it --image=...`, then run this there).
#
#   scripts/collect-node.sh --out DIR [--netns NAME] [--name NODE]
#
# A file whose command fails (a tool missing, not root) is not written, and the command
# is named on stderr; the exit status is then 2. What could be collected is written.
set -u

out=
netns=
name=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --netns) netns=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "collect-node.sh: unknown argument $1 (expected --out DIR [--netns NAME] [--name NODE])" >&2; exit 2 ;;
  esac
done
if [ -z "$out" ]; then
  echo "collect-node.sh: --out DIR is required" >&2
  exit 2
fi
if [ -n "$netns" ] && [ ! -e "/run/netns/$netns" ]; then
  echo "collect-node.sh: network namespace \`$netns\` does not exist (expected one \`ip netns list\` shows)" >&2
  exit 2
fi
mkdir -p "$out" || exit 2
status=0
written=0
total=0

# Run a command here or in the namespace.
inns() {
  if [ -n "$netns" ]; then ip netns exec "$netns" "$@"; else "$@"; fi
}

# collect FILE CMD...: the command's output into FILE (appended to what is there), or a
# failure named on stderr and FILE removed.
collect() {
  file=$1; shift
  tool=$1
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "collect-node.sh: $file not collected: \`$tool\` is not installed" >&2
    rm -f "$out/$file.part"
    return 1
  fi
  if ! inns "$@" >>"$out/$file.part" 2>"$out/.err"; then
    echo "collect-node.sh: $file not collected: \`$*\` failed: $(head -n 1 "$out/.err")" >&2
    rm -f "$out/$file.part"
    return 1
  fi
  return 0
}

# one FILE CMD...: a file from one command; two FILE "CMD1" "CMD2": from two.
finish() {
  total=$((total + 1))
  if [ "$1" = ok ]; then
    mv "$out/$2.part" "$out/$2"
    written=$((written + 1))
  else
    status=2
  fi
}
one() {
  file=$1; shift
  rm -f "$out/$file.part"
  if collect "$file" "$@"; then finish ok "$file"; else finish no "$file"; fi
}

one iptables-legacy-save.txt iptables-legacy-save
one ip6tables-legacy-save.txt ip6tables-legacy-save
one iptables-nft-save.txt iptables-nft-save
one ip6tables-nft-save.txt ip6tables-nft-save
one ipset-save.txt ipset save
one nft-ruleset.json nft -j list ruleset
one ip-addr.json ip -j addr show
one ip-link.json ip -j -d link show
for pair in "ip-route.json:route show table all" "ip-rule.json:rule show"; do
  file=${pair%%:*}
  args=${pair#*:}
  rm -f "$out/$file.part"
  # shellcheck disable=SC2086
  if collect "$file" ip -j $args && collect "$file" ip -6 -j $args; then
    finish ok "$file"
  else
    finish no "$file"
  fi
done
# The sysctls, as `sysctl` prints them (the loop is fwsim's SYSCTL_SCRIPT, word for word).
rm -f "$out/sysctl.txt.part"
if collect sysctl.txt sh -c '
for k in net/ipv4/ip_forward net/ipv6/conf/all/forwarding net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables net/bridge/bridge-nf-call-arptables; do
  if [ -r "/proc/sys/$k" ]; then printf '"'"'%s = %s\n'"'"' "$(echo "$k" | tr / .)" "$(cat "/proc/sys/$k")"; fi
done
for d in /proc/sys/net/ipv4/conf/*; do
  n=${d##*/}
  for p in forwarding rp_filter src_valid_mark; do
    if [ -r "$d/$p" ]; then printf '"'"'net.ipv4.conf.%s.%s = %s\n'"'"' "$n" "$p" "$(cat "$d/$p")"; fi
  done
done
if [ ! -d /proc/sys/net/bridge ]; then echo '"'"'# net.bridge: absent (br_netfilter is not loaded: bridged traffic does not cross iptables)'"'"'; fi
'; then finish ok sysctl.txt; else finish no sysctl.txt; fi

# node.yaml (JSON-quoted strings are YAML strings).
q() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
if [ -z "$name" ]; then
  if [ -n "$netns" ]; then name=$netns; else name=$(cat /proc/sys/kernel/hostname 2>/dev/null); fi
fi
{
  echo "# Written by scripts/collect-node.sh"
  echo "name: $(q "$name")"
  echo "collected_at: $(q "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
  echo "kernel: $(q "$(cat /proc/sys/kernel/osrelease 2>/dev/null)")"
  if [ -n "$netns" ]; then echo "netns: $(q "$netns")"; fi
  echo "tools:"
  for t in "iptables --version" "nft --version" "ipset --version" "ip -V"; do
    tool=${t%% *}
    if command -v "$tool" >/dev/null 2>&1; then
      # shellcheck disable=SC2086
      echo "  $tool: $(q "$($t 2>&1 | head -n 1)")"
    fi
  done
} >"$out/node.yaml"
total=$((total + 1))
written=$((written + 1))
rm -f "$out/.err"
echo "wrote $written of $total files into $out"
exit $status
