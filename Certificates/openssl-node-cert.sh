#!/usr/bin/env bash
# 用 openssl 命令行签发 ClinicMesh 节点证书（与 `clinicmesh certs issue` 等效），适合已有自己 CA 的医院。
# Issue a ClinicMesh node certificate with the openssl command line (same as `clinicmesh certs issue`),
# for a hospital that already runs its own CA.
#
#   Certificates/openssl-node-cert.sh --ca-cert CA.crt --ca-key CA.key \
#       --node-id neike-1 --department 内科 --host neike.hospital.local [--host 10.1.2.3] \
#       --out DIR [--days 365] [--force]
#
# 写出 / writes:  DIR/node.crt  DIR/node.key (0600)  DIR/ca.crt
# 并打印证书序列号，须登记到集群成员中 / and prints the serial, which must be recorded in the membership.
set -euo pipefail

die() { printf '%s\n' "$@" >&2; exit 1; }

ca_cert="" ca_key="" node_id="" department="" out="" days=365 force=0
hosts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ca-cert) ca_cert="${2:-}"; shift 2 ;;
    --ca-key) ca_key="${2:-}"; shift 2 ;;
    --node-id) node_id="${2:-}"; shift 2 ;;
    --department) department="${2:-}"; shift 2 ;;
    --host) hosts+=("${2:-}"); shift 2 ;;
    --out) out="${2:-}"; shift 2 ;;
    --days) days="${2:-}"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "未知参数 $1。用法见 --help。" "Unknown argument $1: see --help." ;;
  esac
done

command -v openssl >/dev/null || die "找不到 openssl 命令，请先安装 openssl。" "The openssl command is not installed: install openssl first."
[ -n "$ca_cert" ] && [ -r "$ca_cert" ] || die "找不到或无法读取 CA 证书（--ca-cert）：$ca_cert" "Cannot read the CA certificate (--ca-cert): $ca_cert"
[ -n "$ca_key" ] && [ -r "$ca_key" ] || die "找不到或无法读取 CA 私钥（--ca-key）：$ca_key" "Cannot read the CA private key (--ca-key): $ca_key"
[ -n "$out" ] || die "缺少 --out 文件夹。" "Missing --out DIR."
[[ "$node_id" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die \
  "节点 ID“$node_id”无效：须为 1 到 64 个 ASCII 字母、数字、“.”、“_”或“-”，并以字母或数字开头。" \
  "Invalid node id \"$node_id\": use 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit."
[ -n "$department" ] || die "缺少 --department（科室名称，例如 内科）。" "Missing --department (the department name, e.g. 内科)."
case "$department" in *[/\\+=,\;\"\<\>#]*) die "科室名称不能含 / \\ + = , ; \" < > #：$department" "The department must not contain / \\ + = , ; \" < > #: $department" ;; esac
[ "${#hosts[@]}" -gt 0 ] || die "至少需要一个 --host（节点的域名或 IP）。" "At least one --host is required (the node's DNS name or IP)."
case "$days" in ''|*[!0-9]*) die "--days 须为正整数：$days" "--days must be a positive integer: $days" ;; esac

sans="URI:clinicmesh://node/$node_id"
for h in "${hosts[@]}"; do
  if [[ "$h" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || [[ "$h" == *:* ]]; then
    sans="$sans,IP:$h"
  elif [[ "$h" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    sans="$sans,DNS:$(printf '%s' "$h" | tr 'A-Z' 'a-z')"
  else
    die "主机“$h”既不是 IP 地址也不是有效的域名。" "Host \"$h\" is neither an IP address nor a valid DNS name."
  fi
done

mkdir -p "$out"
if [ "$force" != 1 ]; then
  for f in node.key node.crt; do
    [ -e "$out/$f" ] && die "$out/$f 已存在，未覆盖。轮换证书时请加 --force。" "$out/$f already exists and was left alone: add --force when rotating."
  done
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat > "$work/req.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
utf8 = yes
string_mask = utf8only
[dn]
O = ClinicMesh
OU = $department
CN = $node_id
CNF

cat > "$work/ext.cnf" <<CNF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

rnd="$(openssl rand -hex 16)"
serial="$(printf '%02x' $(( (0x${rnd:0:2} & 0x7f) | 0x40 )))${rnd:2}"

# 私钥在目标文件夹内以 0600 创建，再原子改名 / the key is created 0600 inside the target folder, then renamed atomically
keytmp="$out/.node.key.tmp.$$"
trap 'rm -rf "$work"; rm -f "$keytmp"' EXIT
( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$keytmp" )
openssl req -new -config "$work/req.cnf" -key "$keytmp" -out "$work/node.csr"
openssl x509 -req -in "$work/node.csr" -CA "$ca_cert" -CAkey "$ca_key" -set_serial "0x$serial" \
  -days "$days" -sha256 -extfile "$work/ext.cnf" -out "$work/node.crt" 2>"$work/x509.err" \
  || die "签发失败（CA 证书与私钥是否匹配？）：$(cat "$work/x509.err")" "Signing failed (do the CA certificate and key match?): $(cat "$work/x509.err")"

mv -f "$keytmp" "$out/node.key"
for f in node.crt; do cp "$work/$f" "$out/$f.tmp" && chmod 0644 "$out/$f.tmp" && mv -f "$out/$f.tmp" "$out/$f"; done
cp "$ca_cert" "$out/ca.crt.tmp" && chmod 0644 "$out/ca.crt.tmp" && mv -f "$out/ca.crt.tmp" "$out/ca.crt"

echo "已签发节点证书：$node_id（$department），序列号 $serial。请在集群成员中登记此序列号。"
echo "Node certificate issued: $node_id ($department), serial $serial. Record this serial in the cluster membership."
echo "serial=$serial"
