#!/usr/bin/env bash
# 用 openssl 命令行创建 ClinicMesh 集群 CA（与 `clinicmesh certs init-ca` 等效）。
# Make a ClinicMesh cluster CA with the openssl command line (same as `clinicmesh certs init-ca`).
#
#   Certificates/openssl-ca.sh --out DIR [--name "CA 名称"] [--days 3650] [--force]
#
# 写出 / writes:  DIR/ca.crt (0644)  DIR/ca.key (0600, 只留在管理员机器上 / stays on the admins' machine)
# 医院已有 CA 时不需要本脚本：直接把那张 CA 证书与私钥（或其下的中间 CA）交给 openssl-node-cert.sh。
# A hospital that already runs a CA does not need this script: hand that CA (or an intermediate under it)
# to openssl-node-cert.sh.
set -euo pipefail

die() { printf '%s\n' "$@" >&2; exit 1; }

out="" name="ClinicMesh Cluster CA" days=3650 force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:-}"; shift 2 ;;
    --name) name="${2:-}"; shift 2 ;;
    --days) days="${2:-}"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "未知参数 $1。用法见 --help。" "Unknown argument $1: see --help." ;;
  esac
done

[ -n "$out" ] || die "缺少 --out 文件夹。" "Missing --out DIR."
command -v openssl >/dev/null || die "找不到 openssl 命令，请先安装 openssl。" "The openssl command is not installed: install openssl first."
case "$days" in ''|*[!0-9]*) die "--days 须为正整数：$days" "--days must be a positive integer: $days" ;; esac
case "$name" in *[/\\]*) die "CA 名称不能含 / 或 \\：$name" "The CA name must not contain / or \\: $name" ;; esac

mkdir -p "$out"
if [ "$force" != 1 ]; then
  for f in ca.key ca.crt; do
    [ -e "$out/$f" ] && die "$out/$f 已存在，未覆盖。确需替换请加 --force。" "$out/$f already exists and was left alone: add --force to replace it."
  done
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat > "$work/ca.cnf" <<CNF
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
utf8 = yes
string_mask = utf8only
[dn]
O = ClinicMesh
CN = $name
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF

# 随机 128 位正序列号 / random positive 128-bit serial (top bit clear, next bit set: always 16 bytes)
rnd="$(openssl rand -hex 16)"
serial="$(printf '%02x' $(( (0x${rnd:0:2} & 0x7f) | 0x40 )))${rnd:2}"

# 私钥从创建起就是 0600 / the key is 0600 from the moment it exists
# 私钥在目标文件夹内以 0600 创建，再原子改名 / the key is created 0600 inside the target folder, then renamed atomically
keytmp="$out/.ca.key.tmp.$$"
trap 'rm -rf "$work"; rm -f "$keytmp"' EXIT
( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$keytmp" )
openssl req -x509 -new -config "$work/ca.cnf" -key "$keytmp" -sha256 -days "$days" \
  -set_serial "0x$serial" -out "$work/ca.crt"

mv -f "$keytmp" "$out/ca.key"
cp "$work/ca.crt" "$out/ca.crt.tmp" && chmod 0644 "$out/ca.crt.tmp" && mv -f "$out/ca.crt.tmp" "$out/ca.crt"

echo "已创建集群 CA：$out/ca.crt 与 $out/ca.key（0600，勿复制到节点）。"
echo "Cluster CA created: $out/ca.crt and $out/ca.key (0600, never copy it to a node)."
