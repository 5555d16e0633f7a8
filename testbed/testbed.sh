#!/usr/bin/env bash
# kompi testbed: a real Kubernetes 1.20 cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy, containerd+runc, bridge CNI, dnsmasq cluster DNS) for a root shell in Debian bookworm: one node, or N with --nodes.
# Usage: testbed.sh build | up [--nodes N] | node stop|kill|start|restart|cut|connect NODE | restart-apiserver | check | status | down
#                  | image NAME:TAG [debian-pkg...] [--add SRC:DEST...]
#                  | image NAME:TAG --suite SUITE [--user NAME] debian-pkg... [--add SRC:DEST...] | rootfs --suite SUITE [--user NAME] debian-pkg...
#                  | kompi-image [--suite bullseye|bookworm|trixie] [--mpi openmpi|mpich] [--kompi PATH] [--add SRC:DEST...] | kompi-rootfs
#                  | examples [--suite bullseye|bookworm|trixie] [--mpi openmpi|mpich]
set -euo pipefail

SELF=$(readlink -f "$0")
REPO=$(dirname "$(dirname "$SELF")")
CACHE=${KOMPI_TESTBED_CACHE:-$HOME/.cache/kompi/testbed}
DIR=${KOMPI_TESTBED_DIR:-/tmp/kompi-testbed}
BIN=$CACHE/bin IMAGES=$CACHE/images ROOTFS=$CACHE/rootfs
SOCK=/run/containerd/containerd.sock KUBELET_DIR=/var/lib/kubelet
BRIDGE=kt0 GW=10.244.0.1 SUBNET=10.244.0.0/24 SVC_CIDR=10.96.0.0/16 API_SVC=10.96.0.1 DOMAIN=cluster.local
PAUSE=k8s.gcr.io/pause:3.2 CHECK_IMAGE=testbed/mpi-kubectl:check KOMPI_IMAGE=kompi/runtime
# sysctls that up may change (up: bridge-nf-call-iptables; kube-proxy: route_localnet; CNI bridge: ip_forward; kubelet:
# the rest, as it does by default); down restores them
HOST_SYSCTLS="net/bridge/bridge-nf-call-iptables net/ipv4/conf/all/route_localnet net/ipv4/ip_forward vm/overcommit_memory
  vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes"
K8S_BINS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
# Kubernetes 1.20 vendors reflect2 1.0.1, whose map code crashes under Go >= 1.18: the apiserver panics on
# every request to statefulsets/scale (kubectl scale, the one-shot scale-down). Debian's
# golang-github-modern-go-reflect2-dev has the fixed 1.0.2; binaries built without it are rebuilt.
K8S_RECIPE="kubernetes-1.20.2 reflect2-1.0.2"
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
export KUBECONFIG=$DIR/kubeconfig PATH=$BIN:$PATH KOMPI_TESTBED_CACHE=$CACHE KOMPI_TESTBED_DIR=$DIR

log() { printf '[testbed %(%T)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
quiet() { local lf=$1; shift; "$@" >>"$lf" 2>&1 || { tail -n 25 "$lf" >&2; die "failed: $* (log: $lf)"; }; }
wait_for() { # DESC SECONDS CMD...: poll once a second; fail fast when one of our daemons has exited
  local desc=$1 n=$2 f; shift 2
  until "$@" >/dev/null 2>&1; do
    for f in "$DIR"/pids/*; do
      if [ -f "$f" ] && ! alive "${f##*/}"; then tail -n 20 "$DIR/logs/${f##*/}.log" >&2; die "${f##*/} exited"; fi
    done
    ((n-- > 0)) || die "timeout waiting for $desc (logs: $DIR/logs)"; sleep 1
  done
}
image_tar() { echo "$IMAGES/$(tr '/:' '__' <<<"$1").tar"; }
ctr_alive() { local sock; sock=$(node_sock "${1:-node1}"); [ -S "$sock" ] && timeout 5 ctr --address "$sock" version >/dev/null 2>&1; }
node_ready() { [ "$(kubectl get node "${1:-node1}" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]; }

# ---- daemons run in their own session (pid = pgid); $DIR/pids/NAME holds "pid starttime" ----
starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; s=${s##*) }; set -- $s; [ "$1" = Z ] || echo "${20}"; }
alive() { local pid st; [ -f "$DIR/pids/$1" ] && read -r pid st <"$DIR/pids/$1" && [ -n "$st" ] && [ "$(starttime "$pid")" = "$st" ]; }
start() { # NAME CMD...
  local name=$1; shift; log "starting $name"
  setsid "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
  echo "$! $(starttime $!)" >"$DIR/pids/$name"
}
stop() { # NAME: SIGTERM to the process group we started, SIGKILL after 10 s
  local pid st; [ -f "$DIR/pids/$1" ] || return 0
  if alive "$1"; then
    read -r pid st <"$DIR/pids/$1"; log "stopping $1 (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$1" || break; sleep 0.2; done
    if alive "$1"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  fi
  rm -f "$DIR/pids/$1"
}

# ---- images: docker-archive tars (manifest.json, config, layers), imported with ctr ----
# IMAGE.tar.id holds "REF CONFIG_DIGEST"; the config lists the layer digests, so the id names the content.
pack_image() { # REF OUT CONFIG_JSON BASE_LAYER|'' [SRC:DEST...]: the base layer (its digest in BASE_LAYER.sha256) and,
  # with SRC:DEST, a second layer with those files; leaves OUT alone if it already holds that image
  python3 - "$@" <<'PY'
import hashlib, io, json, os, platform, sys, tarfile
ref, out, conf, base, *adds = sys.argv[1:]
def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
    return h.hexdigest()
layers = [(base, open(base + '.sha256').read().split()[0])] if base else []
add = out + '.add-layer'
if adds:  # owned by root, mtime 0 (the same files give the same layer); parent directories only where the base has none
    have = set()
    if base:
        with tarfile.open(base) as t: have = {(n[2:] if n.startswith('./') else n).strip('/') for n in t.getnames()}
    def norm(ti): ti.uid = ti.gid = 0; ti.uname = ti.gname = 'root'; ti.mtime = 0; return ti
    with tarfile.open(add, 'w', format=tarfile.GNU_FORMAT) as t:
        for src, dest in (a.split(':', 1) for a in adds):
            parts = dest.strip('/').split('/')
            for d in ('/'.join(parts[:i]) for i in range(1, len(parts))):
                if d not in have:
                    ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti); have.add(d)
            t.add(src, arcname='/'.join(parts), filter=norm)
    layers.append((add, sha256(add)))
arch = {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(platform.machine(), platform.machine())
cfg = {'architecture': arch, 'os': 'linux', 'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + d for _, d in layers]},
       'config': dict({'Env': ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']}, **json.loads(conf))}
cfgb = json.dumps(cfg, sort_keys=True).encode(); cid = hashlib.sha256(cfgb).hexdigest(); ident = '%s sha256:%s' % (ref, cid)
idfile = out + '.id'
if os.path.exists(out) and os.path.exists(idfile) and open(idfile).read().strip() == ident:
    print('unchanged: ' + ident)
else:
    man = json.dumps([{'Config': cid + '.json', 'RepoTags': [ref], 'Layers': [d + '/layer.tar' for _, d in layers]}]).encode()
    with tarfile.open(out + '.tmp', 'w', copybufsize=1 << 20) as t:
        for path, d in layers: t.add(path, arcname=d + '/layer.tar')
        for name, data in ((cid + '.json', cfgb), ('manifest.json', man)):
            ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    if os.path.exists(idfile): os.remove(idfile)
    os.replace(out + '.tmp', out)
    with open(idfile, 'w') as f: f.write(ident + '\n')
    print('written: ' + ident)
if adds: os.remove(add)
PY
}
ctr_has() { # NODE REF: the node's containerd holds it (ctr names docker.io/library/x, docker.io/org/x, and registry/org/x as given)
  local r=$2
  if [[ $r != */* ]]; then r=docker.io/library/$r
  elif [[ ${r%%/*} != *[.:]* && ${r%%/*} != localhost ]]; then r=docker.io/$r; fi
  ctr --address "$(node_sock "$1")" -n k8s.io images ls -q | grep -qxF "$r"
}
import_image() { # TAR [NODE]: into NODE's containerd (default node1), unless it already holds this image (same id as
  # recorded at the last import)
  local node=${2:-node1} id rec name=${1##*/} t0=$SECONDS snap records
  records=$(node_records "$node"); rec=$records/$name.id
  id=$(cat "$1.id" 2>/dev/null) || id=""
  if [ -n "$id" ] && [ "$(cat "$rec" 2>/dev/null)" = "$id" ] && ctr_has "$node" "${id%% *}"; then
    log "$node: ${id%% *} already imported ($name unchanged)"; return
  fi
  snap=$(cat "$DIR/snapshotter"); log "$node: importing $name into containerd (namespace k8s.io, snapshotter $snap)"
  mkdir -p "$records"; rm -f "$rec"
  quiet "$DIR/logs/import-$node-$name.log" ctr --address "$(node_sock "$node")" -n k8s.io images import --snapshotter "$snap" "$1"
  if [ -n "$id" ]; then echo "$id" >"$rec"; fi
  log "$node: imported $name in $((SECONDS - t0)) s"
}
kompi_version() { python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["version"])' "$REPO/Cargo.toml"; }
import_all() { # [NODE]: the pause image and every cached image into node1; into an extra node the pause image and kompi's
  # default runtime image only, which is what runs on several nodes (each image costs every node 20 to 70 s to import and
  # its disk): later `image` and `kompi-image` calls import into every node
  local f node=${1:-node1} tars
  if [ "$node" = node1 ]; then tars=("$IMAGES"/*.tar); else tars=("$(image_tar "$KOMPI_IMAGE:$(kompi_version)")"); fi
  for f in "$CACHE/pause.tar" "${tars[@]}"; do if [ -f "$f" ]; then import_image "$f" "$node"; fi; done
}
import_everywhere() { # TAR: into every node whose containerd runs (a stopped node is skipped: it would hang the import)
  local node
  for node in $(nodes); do
    if node_frozen "$node"; then log "$node is stopped: '$0 node start $node' then '$0 up' import ${1##*/} into it"
    elif alive "$(daemon_name "$node" containerd)"; then import_image "$1" "$node"; fi
  done
}

# The runtime image's rootfs: mmdebstrap installs images/mpi-<MPI>.txt and images/packages.txt (plus extra packages)
# from a Debian suite and runs images/setup.sh inside it, as images/Dockerfile does on debian:<suite>-slim. minbase, the merged-usr hook (debootstrap's way: no
# usrmerge package, so no perl) and the dpkg excludes make the base what bookworm-slim is. /run is kept: setup.sh
# creates /run/sshd there, which mmdebstrap would otherwise empty.
MMDEBSTRAP_OPTS=(--variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --skip=cleanup/run
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/groff/*')
suite_opts() { # SUITE: MMDEBSTRAP_OPTS for that suite, into the array opts. bullseye has no usr-is-merged package, which
  # the merged-usr hook installs: its /usr stays split, as in debian:bullseye.
  local o; opts=()
  for o in "${MMDEBSTRAP_OPTS[@]}"; do
    if [ "$1" != bullseye ] || [[ $o != --hook-dir=*/merged-usr ]]; then opts+=("$o"); fi
  done
}
image_packages() { # MPI: its package list, then the common one
  sed 's/#.*//' "$REPO/images/mpi-$1.txt" "$REPO/images/packages.txt" | xargs
}
SUITES="bullseye bookworm trixie" MPIS="openmpi mpich"
variant_tag() { # SUITE MPI: the kompi image's tag suffix, saying what is inside (bookworm's Open MPI 4.1.4 has none)
  case $1/$2 in
    bookworm/openmpi) echo "" ;;
    bullseye/openmpi) echo "-bullseye" ;;      # Open MPI 4.1.0
    bullseye/mpich) echo "-mpich-bullseye" ;;  # MPICH 3.4.1
    bookworm/mpich) echo "-mpich-bookworm" ;;   # MPICH 4.0.2
    trixie/openmpi) echo "-ompi5" ;;            # Open MPI 5.0.7 (PRRTE 3.0)
    trixie/mpich) echo "-mpich" ;;              # MPICH 4.2.1
  esac
}
parse_variant() { # ARG...: --suite and --mpi into suite and mpi (defaults bookworm, openmpi), anything else into the array rest
  suite=bookworm mpi=openmpi rest=()
  while [ $# -gt 0 ]; do
    case $1 in
      --suite|--mpi) [ $# -ge 2 ] || die "$1 needs a value"; printf -v "${1#--}" %s "$2"; shift 2 ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [[ " $SUITES " == *" $suite "* ]] || die "--suite $suite: one of $SUITES"
  [[ " $MPIS " == *" $mpi "* ]] || die "--mpi $mpi: one of $MPIS"
}
build_rootfs() { # VAR LABEL SUITE MPI [EXTRA_PKG...]: sets VAR to the rootfs tar, cached under a hash of everything that goes into it
  local var=$1 label=$2 suite=$3 mpi=$4 pkgs key out opts; shift 4; suite_opts "$suite"
  pkgs=$(image_packages "$mpi" | tr ' ' ,)${*:+,$(tr ' ' , <<<"$*")}
  key=$( { printf '%s\n' "$suite" "$pkgs" "${opts[@]}"; cat "$REPO/images/setup.sh"; } | sha256sum | cut -c1-16)
  out=$ROOTFS/$label-$key.tar
  printf -v "$var" %s "$out"
  if [ -f "$out.sha256" ]; then log "rootfs $label cached: ${out##*/}"; return; fi
  mkdir -p "$ROOTFS" "$CACHE/logs"
  log "mmdebstrap $suite with $pkgs, then images/setup.sh (1 to 3 min; log: $CACHE/logs/mmdebstrap.log)"
  quiet "$CACHE/logs/mmdebstrap.log" mmdebstrap "${opts[@]}" --include="$pkgs" \
    --customize-hook="upload $REPO/images/setup.sh /tmp/kompi-setup.sh" \
    --customize-hook='chroot "$1" /bin/sh /tmp/kompi-setup.sh' --customize-hook='rm "$1/tmp/kompi-setup.sh"' \
    --format=tar "$suite" "$out.tmp"
  mv "$out.tmp" "$out"; sha256sum "$out" | cut -d' ' -f1 >"$out.sha256"
  find "$ROOTFS" -maxdepth 1 -name "$label-*.tar*" ! -name "${out##*/}*" -delete   # older versions of this rootfs
}
add_image() { # REF CONFIG_JSON ROOTFS [SRC:DEST...]: pack into $IMAGES; import now if the cluster is up
  local ref=$1 tar out; tar=$(image_tar "$1")
  mkdir -p "$IMAGES"; log "packaging $ref as $tar"
  out=$(pack_image "$ref" "$tar" "$2" "${@:3}"); log "$out ($(du -m "$tar" | cut -f1) MB)"
  if alive containerd; then import_everywhere "$tar"; else log "cluster not up: 'up' will import it"; fi
}
parse_adds() { # ARG...: --add SRC:DEST pairs into the array adds, anything else into the array rest
  adds=() rest=()
  while [ $# -gt 0 ]; do
    case $1 in
      --add) [ $# -ge 2 ] && [[ $2 == *:/* ]] || die "--add needs SRC:/ABSOLUTE/DEST"
             [ -e "${2%%:*}" ] || die "--add: ${2%%:*} does not exist"; adds+=("$2"); shift 2 ;;
      *) rest+=("$1"); shift ;;
    esac
  done
}

cmd_build() {
  local b missing="" src=$CACHE/src list=/etc/apt/sources.list.d/kompi-testbed-src.sources tree
  mkdir -p "$BIN" "$IMAGES" "$CACHE/logs" "$src"
  log "apt-get update + install dependencies (log: $CACHE/logs/apt.log)"
  quiet "$CACHE/logs/apt.log" apt-get update
  quiet "$CACHE/logs/apt.log" apt-get install -y --no-install-recommends golang-go etcd-server containerd runc \
    containernetworking-plugins mmdebstrap rsync jq openssl dnsmasq-base gcc libc6-dev make python3 openssh-client iproute2 \
    iptables conntrack nftables golang-github-modern-go-reflect2-dev
  command -v kubectl >/dev/null || quiet "$CACHE/logs/apt.log" apt-get install -y --no-install-recommends kubernetes-client
  if [ "$(cat "$BIN/.recipe" 2>/dev/null)" != "$K8S_RECIPE" ]; then
    for b in $K8S_BINS; do rm -f "$BIN/$b"; done
  fi
  for b in $K8S_BINS; do [ -x "$BIN/$b" ] || missing+=" cmd/$b"; done; missing=${missing# }
  if [ -z "$missing" ] && [ -f "$CACHE/pause.tar" ]; then log "kubernetes binaries and pause image already in $CACHE"; return; fi
  if ! compgen -G "$src/kubernetes_*.orig.tar.gz" >/dev/null; then
    log "adding a bookworm deb-src entry ($list, derived from debian.sources)"
    awk 'BEGIN { RS = ""; FS = "\n" }
      { u = k = ""; hit = 0
        for (i = 1; i <= NF; i++) { if ($i ~ /^URIs:/) u = $i; if ($i ~ /^Signed-By:/) k = $i
                                    if ($i ~ /^Suites:/ && $i ~ /[ :]bookworm( |$)/) hit = 1 }
        if (hit && u != "") { print "Types: deb-src\n" u "\nSuites: bookworm\nComponents: main"; if (k != "") print k; exit } }' \
      /etc/apt/sources.list.d/debian.sources >"$list"
    [ -s "$list" ] || die "no bookworm stanza in /etc/apt/sources.list.d/debian.sources"
    quiet "$CACHE/logs/apt.log" apt-get update
    log "apt-get source --download-only kubernetes"
    (cd "$src" && quiet "$CACHE/logs/apt.log" apt-get source --download-only kubernetes)
    rm -f "$list"
  fi
  rm -rf "$src/tree"; mkdir -p "$src/tree"
  log "extracting $(basename "$src"/kubernetes_*.orig.tar.gz)"
  tar -xzf "$src"/kubernetes_*.orig.tar.gz -C "$src/tree"; tree=$(echo "$src"/tree/kubernetes-*)
  log "replacing the vendored reflect2 1.0.1 with Debian's 1.0.2 (from $REFLECT2_SRC)"
  rm -f "$tree"/vendor/github.com/modern-go/reflect2/*.go "$tree"/vendor/github.com/modern-go/reflect2/*.s
  cp "$REFLECT2_SRC"/*.go "$REFLECT2_SRC"/*.s "$tree/vendor/github.com/modern-go/reflect2/"
  rm -f "$tree"/vendor/github.com/modern-go/reflect2/*_test.go
  if [ -n "$missing" ]; then  # only the missing ones; rsync must be installed before the first make (else 0-byte code generators)
    log "make WHAT=\"$missing\" CGO_ENABLED=0 (about 4 min for all five on 2 cores; log: $CACHE/logs/make.log)"
    (cd "$tree" && quiet "$CACHE/logs/make.log" env HOME="$src/home" CGO_ENABLED=0 make WHAT="$missing")
    for b in $missing; do install -m 0755 "$tree/_output/bin/${b#cmd/}" "$BIN/${b#cmd/}"; done
    echo "$K8S_RECIPE" >"$BIN/.recipe"
  fi
  if [ ! -f "$CACHE/pause.tar" ]; then
    log "compiling build/pause/linux/pause.c statically; packaging it as $PAUSE"
    mkdir -p "$CACHE/pause"; gcc -Os -static -DVERSION=3.2 -o "$CACHE/pause/pause" "$tree/build/pause/linux/pause.c"
    strip "$CACHE/pause/pause"; pack_image "$PAUSE" "$CACHE/pause.tar" '{"Entrypoint": ["/pause"]}' '' "$CACHE/pause/pause:/pause" >/dev/null
  fi
  rm -rf "${src:?}/tree" "${src:?}/home"; log "build done: $(ls "$BIN" | tr '\n' ' ')"
}

# A user's own image, as a Dockerfile FROM debian:<suite> makes it: only the named packages (no kompi, none of
# images/setup.sh) and, with --user, that account (useradd -m, as mpi-operator's base image makes mpiuser: uid 1000).
build_user_rootfs() { # VAR SUITE USER PKG...: sets VAR to the rootfs tar, cached under a hash of everything that goes into it
  local var=$1 suite=$2 user=$3 pkgs key out opts hooks=(); shift 3; suite_opts "$suite"
  [ $# -ge 1 ] || die "a user's image needs its Debian packages (for example openmpi-bin openssh-server)"
  pkgs=$(tr ' ' , <<<"$*")
  key=$( { printf '%s\n' "$suite" "$pkgs" "$user" "${opts[@]}"; } | sha256sum | cut -c1-16)
  out=$ROOTFS/user_${suite}-$key.tar
  printf -v "$var" %s "$out"
  if [ -f "$out.sha256" ]; then log "rootfs of the $suite user image cached: ${out##*/}"; return; fi
  if [ -n "$user" ]; then hooks=(--customize-hook="chroot \"\$1\" useradd --create-home --shell /bin/bash $user"); fi
  mkdir -p "$ROOTFS" "$CACHE/logs"
  log "mmdebstrap $suite with $pkgs${user:+ and user $user} (2 to 8 min; log: $CACHE/logs/mmdebstrap.log)"
  quiet "$CACHE/logs/mmdebstrap.log" mmdebstrap "${opts[@]}" --include="$pkgs" "${hooks[@]}" --format=tar "$suite" "$out.tmp"
  mv "$out.tmp" "$out"; sha256sum "$out" | cut -d' ' -f1 >"$out.sha256"
}
parse_user_image() { # ARG...: --suite and --user into suite and user, anything else into the array rest
  suite="" user="" rest=()
  while [ $# -gt 0 ]; do
    case $1 in
      --suite|--user) [ $# -ge 2 ] || die "$1 needs a value"; printf -v "${1#--}" %s "$2"; shift 2 ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [ -z "$suite" ] || [[ " $SUITES " == *" $suite "* ]] || die "--suite $suite: one of $SUITES"
  [ -z "$user" ] || [ -n "$suite" ] || die "--user needs --suite (a user's own image)"
  [[ -z "$user" || $user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user $user: not a user name"
}

cmd_image() { # NAME:TAG [--suite S [--user NAME]] [debian-package...] [--add SRC:DEST...]: without --suite, the (bookworm,
  # Open MPI) runtime image's packages plus these; with --suite, a user's own image of that suite (build_user_rootfs)
  local adds rest rootfs suite user
  parse_adds "$@"; parse_user_image "${rest[@]}"
  [ ${#rest[@]} -ge 1 ] || die "usage: $0 image NAME:TAG [--suite S [--user NAME]] [debian-package...] [--add SRC:DEST...]"
  if [ -n "$suite" ]; then
    build_user_rootfs rootfs "$suite" "$user" "${rest[@]:1}"
  else
    build_rootfs rootfs "$(tr '/:' '__' <<<"${rest[0]}")" bookworm openmpi "${rest[@]:1}"
  fi
  add_image "${rest[0]}" '{"Cmd": ["sleep", "infinity"]}' "$rootfs" "${adds[@]}"
}

cmd_rootfs() { # --suite S [--user NAME] debian-package...: prints the rootfs tar of that user's image (as image builds it)
  local rest rootfs suite user
  parse_user_image "$@"; [ -n "$suite" ] || die "usage: $0 rootfs --suite S [--user NAME] debian-package..."
  build_user_rootfs rootfs "$suite" "$user" "${rest[@]}"; echo "$rootfs"
}

cmd_kompi_rootfs() { # prints the rootfs tar of kompi's (bookworm, Open MPI) runtime image, without kompi
  local rootfs
  build_rootfs rootfs "${KOMPI_IMAGE//\//_}_bookworm_openmpi" bookworm openmpi; echo "$rootfs"
}

cmd_kompi_image() { # [--suite S] [--mpi M] [--kompi PATH] [--add SRC:DEST...]: kompi/runtime:<workspace version><variant>,
  # as images/Dockerfile builds it with BASE_IMAGE=debian:S-slim and MPI=M
  local adds rest rootfs kompi="" version suite mpi
  parse_adds "$@"; parse_variant "${rest[@]}"; set -- "${rest[@]}"
  while [ $# -gt 0 ]; do
    case $1 in
      --kompi) [ $# -ge 2 ] || die "--kompi needs a PATH"; kompi=$2; shift 2 ;;
      *) die "usage: $0 kompi-image [--suite bullseye|bookworm|trixie] [--mpi openmpi|mpich] [--kompi PATH] [--add SRC:DEST...]" ;;
    esac
  done
  if [ -z "$kompi" ]; then  # the static kompi, which the image injects into other images; a no-op build when it is fresh
    log "scripts/static-kompi.sh (a release build when the sources changed; log: $CACHE/logs/cargo.log)"
    mkdir -p "$CACHE/logs"; kompi=$("$REPO/scripts/static-kompi.sh" 2>>"$CACHE/logs/cargo.log") || die "scripts/static-kompi.sh failed (log: $CACHE/logs/cargo.log)"
  fi
  [ -x "$kompi" ] || die "$kompi is not an executable"
  log "kompi binary: $kompi ($("$kompi" --version))"
  version=$(kompi_version)
  build_rootfs rootfs "${KOMPI_IMAGE//\//_}_${suite}_$mpi" "$suite" "$mpi"
  add_image "$KOMPI_IMAGE:$version$(variant_tag "$suite" "$mpi")" '{"Entrypoint": ["/usr/local/bin/kompi", "init"], "ExposedPorts": {"2022/tcp": {}}}' \
    "$rootfs" "$kompi:/usr/local/bin/kompi" "${adds[@]}"
}

cmd_examples() { # [--suite S] [--mpi M]: examples/ compiled against that suite's MPI, in a throwaway chroot of it (the
  # host's mpicc is bookworm's Open MPI 4); prints the directory of the binaries, cached under a hash of the sources
  local suite mpi rest dev key out srcs opts
  parse_variant "$@"; suite_opts "$suite"; [ ${#rest[@]} -eq 0 ] || die "usage: $0 examples [--suite bullseye|bookworm|trixie] [--mpi openmpi|mpich]"
  case $mpi in openmpi) dev=libopenmpi-dev ;; mpich) dev=libmpich-dev ;; esac
  srcs=("$REPO"/examples/*.c)
  key=$( { printf '%s\n' "$suite" "$dev" "${opts[@]}"; cat "$REPO/examples/Makefile" "${srcs[@]}"; } | sha256sum | cut -c1-16)
  out=$CACHE/examples/$suite-$mpi-$key
  if [ -d "$out" ]; then log "examples for $suite/$mpi cached: $out"; echo "$out"; return; fi
  mkdir -p "$CACHE/examples" "$CACHE/logs"; rm -rf "$out.tmp"; mkdir "$out.tmp"
  log "mmdebstrap $suite with $dev, then make -C examples inside it (1 to 3 min; log: $CACHE/logs/examples.log)"
  quiet "$CACHE/logs/examples.log" mmdebstrap "${opts[@]}" --include="$dev,gcc,libc6-dev,make" \
    --customize-hook='mkdir "$1/tmp/examples"' --customize-hook="copy-in $REPO/examples/Makefile ${srcs[*]} /tmp/examples" \
    --customize-hook='chroot "$1" make -C /tmp/examples' --customize-hook="copy-out /tmp/examples/bin $out.tmp" \
    --format=null "$suite" /dev/null
  mv "$out.tmp/bin" "$out"; rmdir "$out.tmp"
  find "$CACHE/examples" -maxdepth 1 -name "$suite-$mpi-*" ! -name "${out##*/}" -exec rm -rf {} +   # older builds of these
  log "examples for $suite/$mpi: $out"; echo "$out"
}

gen_pki() { # CA, apiserver serving cert, client certs admin (O=system:masters) and system:kube-proxy, SA key pair, kubeconfigs
  local p=$DIR/pki u; log "generating certificates in $p"
  (cd "$p"
   openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 -subj /CN=kompi-testbed-ca
   openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver
   openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out apiserver.crt -extfile <(
     echo "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:$GW,IP:$API_SVC,DNS:kubernetes,DNS:kubernetes.default,\
DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$DOMAIN")
   openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj /O=system:masters/CN=admin
   openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -days 365 -out admin.crt -extfile <(echo extendedKeyUsage=clientAuth)
   # user system:kube-proxy: the default ClusterRoleBinding system:node-proxier gives it what kube-proxy needs
   openssl req -newkey rsa:2048 -nodes -keyout kube-proxy.key -out kube-proxy.csr -subj /CN=system:kube-proxy
   openssl x509 -req -in kube-proxy.csr -CA ca.crt -CAkey ca.key -days 365 -out kube-proxy.crt -extfile <(echo extendedKeyUsage=clientAuth)
   openssl genrsa -out sa.key 2048 && openssl rsa -in sa.key -pubout -out sa.pub) >"$DIR/logs/openssl.log" 2>&1
  for u in admin kube-proxy; do  # host-side clients use the loopback address (the apiserver listens on all addresses)
    cat >"$DIR/$u.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: testbed, cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$p/ca.crt"}}]
users: [{name: $u, user: {client-certificate: "$p/$u.crt", client-key: "$p/$u.key"}}]
contexts: [{name: testbed, context: {cluster: testbed, user: $u}}]
current-context: testbed
EOF
  done
  mv "$DIR/admin.kubeconfig" "$KUBECONFIG"
}

# ---- host state that up changes and down puts back: netfilter rules and chains, sysctls ----
nft_backend() { iptables -V 2>/dev/null | grep -q nf_tables; }
save_host() { # before anything starts: the sysctls, iptables-save/ip6tables-save and (nf_tables backend) the nft ruleset
  local s t; log "recording sysctls and netfilter rules in $DIR/host (down restores them)"
  for s in $HOST_SYSCTLS; do if [ -f "/proc/sys/$s" ]; then echo "$s $(cat "/proc/sys/$s")"; fi; done >"$DIR/host/sysctl"
  for t in iptables ip6tables; do "$t-save" >"$DIR/host/$t" 2>/dev/null || rm -f "$DIR/host/$t"; done
  if nft_backend; then nft -j list ruleset >"$DIR/host/nft.json"; fi
  if grep -q '^:KUBE-PROXY-CANARY ' "$DIR/host/iptables"; then  # they become part of what down restores
    log "warning: kube-proxy chains already exist (a testbed whose $DIR was lost?): 'kube-proxy --cleanup' removes them"; fi
}
# iptables-save before/now -> an iptables-restore --noflush script: user chains created since up are flushed and
# deleted, chains that existed get back their recorded rules (and policy) if they differ, deleted ones are recreated.
# Counters are not compared (they count on legacy and on nft base chains whose policy was ever set).
IPT_DIFF='
import sys
def parse(path):
    tabs = {}
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("*"): cur = tabs.setdefault(line[1:], {"pol": {}, "rules": {}})
        elif line.startswith(":"):
            name, pol = line[1:].split()[:2]; cur["pol"][name] = pol; cur["rules"].setdefault(name, [])
        elif line.startswith("-A "): cur["rules"].setdefault(line.split()[1], []).append(line)
    return tabs
before, now = parse(sys.argv[1]), parse(sys.argv[2])
for t, n in now.items():
    b = before.get(t, {"pol": {}, "rules": {}})
    new = [c for c in n["pol"] if c not in b["pol"]]
    gone = [c for c in b["pol"] if c not in n["pol"]]
    changed = [c for c in b["pol"] if c in n["pol"] and (b["rules"][c], b["pol"][c]) != (n["rules"][c], n["pol"][c])]
    if not (new or gone or changed): continue
    print("*" + t)
    for c in gone:
        if b["pol"][c] == "-": print("-N " + c)
    for c in changed:
        print("-F " + c)
        if b["pol"][c] != n["pol"][c]: print("-P %s %s" % (c, b["pol"][c]))  # -P turns on nft base-chain counters
    for c in new: print("-F " + c)
    for r in (r for c in changed + gone for r in b["rules"][c]): print(r)
    for c in new:
        if n["pol"][c] == "-": print("-X " + c)
    print("COMMIT")
    sys.stderr.write("%s: deleting %s; restoring %s\n" % (t, " ".join(c for c in new if n["pol"][c] == "-") or "-",
                                                          " ".join(changed + gone) or "-"))
'
# nf_tables backend: base chains and tables that iptables-nft created since up (and that are empty now) -> nft commands
NFT_DIFF='
import json, sys
def objs(path, kind): return [o[kind] for o in json.load(open(path))["nftables"] if kind in o]
def key(o, *f): return tuple(o[x] for x in f)
b_tabs = {key(t, "family", "name") for t in objs(sys.argv[1], "table")}
b_chains = {key(c, "family", "table", "name") for c in objs(sys.argv[1], "chain")}
n_rules = {key(r, "family", "table", "chain") for r in objs(sys.argv[2], "rule")}
n_chains = objs(sys.argv[2], "chain")
for t in objs(sys.argv[2], "table"):
    if t["family"] not in ("ip", "ip6"): continue
    mine = [c for c in n_chains if key(c, "family", "table") == key(t, "family", "name")]
    if key(t, "family", "name") not in b_tabs:
        if all("hook" in c and key(c, "family", "table", "name") not in n_rules for c in mine):
            print("delete table %s %s" % key(t, "family", "name"))
        continue
    for c in mine:
        k = key(c, "family", "table", "name")
        if "hook" in c and k not in b_chains and k not in n_rules: print("delete chain %s %s %s" % k)
'
restore_host() { # after every daemon has stopped: back to what save_host recorded
  local t s v h=$DIR/host
  if [ ! -f "$h/sysctl" ]; then log "warning: no record in $h: netfilter rules and sysctls left as they are"; return 0; fi
  for t in iptables ip6tables; do
    [ -f "$h/$t" ] || continue
    "$t-save" >"$h/$t.now" 2>/dev/null
    python3 -c "$IPT_DIFF" "$h/$t" "$h/$t.now" >"$h/$t.restore" 2>"$h/$t.summary" ||
      die "comparing $h/$t with $h/$t.now failed: $(cat "$h/$t.summary")"
    if [ -s "$h/$t.restore" ]; then
      while read -r s; do log "$t: $s"; done <"$h/$t.summary"
      "$t-restore" --noflush <"$h/$t.restore" || die "$t-restore --noflush <$h/$t.restore failed ($DIR kept; rerun down)"
    fi
  done
  if [ -f "$h/nft.json" ]; then
    nft -j list ruleset >"$h/nft.now.json"
    python3 -c "$NFT_DIFF" "$h/nft.json" "$h/nft.now.json" | while read -r s; do log "nft $s"; nft "$s" || true; done
  fi
  while read -r s v; do
    [ "$(cat "/proc/sys/$s")" = "$v" ] || { log "restoring sysctl ${s//\//.} = $v"; echo "$v" >"/proc/sys/$s"; }
  done <"$h/sysctl"
  if command -v conntrack >/dev/null; then  # connection-tracking entries of the pod network and the Service range
    for s in "--orig-src $POD_NET" "--orig-dst $POD_NET" "--orig-dst $SVC_CIDR" "--orig-dst $LINK_NET"; do conntrack -D $s >/dev/null 2>&1 || true; done
  fi
}

pick_snapshotter() { # overlayfs if it mounts on $DIR's filesystem, else native (which copies the rootfs per container)
  local p=$DIR/overlay-probe s=native
  mkdir -p "$p"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$p/lower,upperdir=$p/upper,workdir=$p/work" "$p/merged" 2>/dev/null; then
    umount "$p/merged"; s=overlayfs
  fi
  rm -rf "$p"; echo "$s" >"$DIR/snapshotter"; log "containerd snapshotter: $s"
}

# The API server's audit log holds the requests of kompi-system's service accounts only (the operator's):
# bench/mpijob_load.py counts them per job. Everything else is left out, so it stays small.
write_audit_policy() {
  cat >"$DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts:kompi-system"]
- level: None
POLICY
}

start_apiserver() {
  local p=$DIR/pki
  write_audit_policy
  start kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:2379 --secure-port=6443 \
    --bind-address=0.0.0.0 --advertise-address="$GW" --tls-cert-file="$p/apiserver.crt" \
    --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" --service-account-key-file="$p/sa.pub" \
    --service-account-signing-key-file="$p/sa.key" --service-account-issuer=https://kubernetes.default.svc \
    --authorization-mode=Node,RBAC --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true \
    --kubelet-preferred-address-types=InternalIP --audit-policy-file="$DIR/audit-policy.yaml" \
    --audit-log-path="$DIR/audit.log" --audit-log-maxsize=100 --audit-log-maxbackup=1
  wait_for "kube-apiserver /readyz" 90 kubectl get --raw /readyz
}

# Stops and starts the API server of a running cluster (for tests of clients that must survive it).
cmd_restart_apiserver() {
  alive kube-apiserver || die "the testbed is not up"
  stop kube-apiserver
  start_apiserver
  log "kube-apiserver restarted"
}

# ---- Extra nodes (up --nodes N). node<i>, for i from 2, is a machine of its own on this one:
#  - network namespace kt-node<i>, linked to the host by the veth pair kt-node<i> (host, 10.243.0.1) <-> eth0 (10.243.0.<i>,
#    its default route and so its node IP); its pods on its own bridge kt0 with 10.244.<i-1>.0/24. The host routes each
#    pod subnet to its node, so every pod reaches every other pod, the API server (10.244.0.1:6443) and the cluster DNS;
#  - a mount namespace (bound to $DIR/nodes/ns/node<i>) with its own /run, /var/lib/kubelet and /var/log: one node's
#    containerd state, pod network namespaces, volumes and pod logs are not another's, and they vanish with it;
#  - cgroup kt-node<i>/daemons of the hierarchies below: its daemons (containerd and its shims, kubelet, kube-proxy). Its
#    containers are where containerd puts them when the kubelet (no QoS cgroups) names no parent, /k8s.io/<id>, found as the
#    children of its shims (node_cgroups). Freezing these stops the node, and their processes are the node's, so faults and
#    removal reach exactly the node.
# Two blackhole routes on the host (10.243.0.0/24, 10.244.0.0/16) keep a cut node's traffic from leaving the machine.
MAX_NODES=9 LINK_NET=10.243.0.0/24 LINK_HOST=10.243.0.1 POD_NET=10.244.0.0/16
NODE_CONTROLLERS="freezer memory cpuacct"   # the hierarchies a node's daemons join
NODE_NS=$DIR/nodes/ns                       # a private mount holding the nodes' mount namespaces
node_dir() { echo "$DIR/nodes/$1"; }
node_sock() { if [ "$1" = node1 ]; then echo "$SOCK"; else echo "$DIR/nodes/$1/containerd.sock"; fi; }
node_records() { if [ "$1" = node1 ]; then echo "$DIR/images"; else echo "$DIR/nodes/$1/images"; fi; }
node_ip() { echo "10.243.0.${1#node}"; }
node_subnet() { if [ "$1" = node1 ]; then echo "$SUBNET"; else echo "10.244.$((${1#node} - 1)).0/24"; fi; }
node_gw() { if [ "$1" = node1 ]; then echo "$GW"; else echo "10.244.$((${1#node} - 1)).1"; fi; }
daemon_name() { if [ "$1" = node1 ]; then echo "$2"; else echo "$1-$2"; fi; }   # its pidfile and log
nodes() { # node1 (if the testbed has a state dir), then every extra node, by number
  local d; [ -d "$DIR" ] || return 0
  echo node1
  for d in "$DIR"/nodes/node*; do if [ -d "$d" ]; then echo "${d##*/}"; fi; done | sort -V
}
extra_nodes() { nodes | { grep -vx node1 || true; }; }
node_frozen() { [ "$1" != node1 ] && [ "$(cat "/sys/fs/cgroup/freezer/kt-$1/freezer.state" 2>/dev/null || echo THAWED)" != THAWED ]; }
node_cut() { [ "$1" != node1 ] && [ -e "/sys/class/net/kt-$1" ] && (( ($(cat "/sys/class/net/kt-$1/flags") & 1) == 0 )); }  # IFF_UP
node_cgroups() { # NODE: its cgroups, as paths in the freezer hierarchy: kt-NODE, then each of its containers' (the cgroups of
  # its shims' children that are not the node's own: runc and CNI plugins run in kt-NODE). Shims frozen or not.
  local pid child
  echo "kt-$1"
  for pid in $(find "/sys/fs/cgroup/freezer/kt-$1" -name cgroup.procs -exec cat {} + 2>/dev/null); do
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do sed -n 's#^[0-9]*:freezer:/##p' "/proc/$child/cgroup" 2>/dev/null; done
  done | { grep -v "^kt-$1\(/\|$\)" || true; } | sort -u
}
cgroup_pids() { # CGROUP...: the processes in these freezer cgroups and below
  local c; for c in "$@"; do find "/sys/fs/cgroup/freezer/$c" -name cgroup.procs -exec cat {} + 2>/dev/null || true; done
}
set_freezer() { # FROZEN|THAWED CGROUP...
  local state=$1 c; shift
  for c in "$@"; do echo "$state" >"/sys/fs/cgroup/freezer/$c/freezer.state" 2>/dev/null || true; done
}
all_frozen() { local c; for c in "$@"; do grep -qx FROZEN "/sys/fs/cgroup/freezer/$c/freezer.state" || return 1; done; }
start_in_node() { # NODE NAME CMD...: a daemon of an extra node, in its namespaces and its cgroup kt-NODE/daemons
  local node=$1 name=$1-$2 c; shift 2; log "starting $name"
  ( for c in $NODE_CONTROLLERS; do echo "$BASHPID" >"/sys/fs/cgroup/$c/kt-$node/daemons/cgroup.procs"; done
    exec setsid nsenter --net="/run/netns/kt-$node" --mount="$NODE_NS/$node" -- "$@" ) </dev/null >"$DIR/logs/$name.log" 2>&1 &
  echo "$! $(starttime $!)" >"$DIR/pids/$name"
}
node_kubeconfigs() { # the admin and kube-proxy kubeconfigs for extra nodes: the API server at the bridge address
  local u
  for u in node:kubeconfig node-proxy:kube-proxy.kubeconfig; do
    [ -f "$DIR/${u%%:*}.kubeconfig" ] || sed "s#https://127.0.0.1:6443#https://$GW:6443#" "$DIR/${u#*:}" >"$DIR/${u%%:*}.kubeconfig"
  done
}

create_node() { # NODE: its network and a fresh machine (then start_containerd, start_kubelet, start_kube_proxy)
  local node=$1 ip sub ns=kt-$1; ip=$(node_ip "$1") sub=$(node_subnet "$1")
  log "creating $node: network namespace $ns, link kt-$node ($LINK_HOST <-> $ip), pods $sub on its bridge $BRIDGE"
  mkdir -p "$(node_dir "$node")"/{kubelet,log,images}
  node_kubeconfigs
  ip route replace blackhole "$LINK_NET"; ip route replace blackhole "$POD_NET"
  echo 1 >/proc/sys/net/ipv4/ip_forward   # the host routes between the nodes (down restores it)
  ip netns add "$ns"; ip -n "$ns" link set lo up
  ip link add "kt-$node" type veth peer name eth0 netns "$ns"
  ip addr add "$LINK_HOST/32" peer "$ip/32" dev "kt-$node"; ip link set "kt-$node" up
  ip -n "$ns" addr add "$ip/32" peer "$LINK_HOST/32" dev eth0; ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$LINK_HOST" dev eth0
  ip netns exec "$ns" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'   # a new namespace does not forward: its pods' traffic
  ip -n "$ns" link add "$BRIDGE" type bridge; ip -n "$ns" addr add "$(node_gw "$node")/24" dev "$BRIDGE"
  ip -n "$ns" link set "$BRIDGE" up
  ip route replace "$sub" via "$ip" dev "kt-$node"
  new_machine "$node"
}
new_machine() { # NODE: its cgroups and a new mount namespace, as after a boot
  local node=$1 c
  for c in $NODE_CONTROLLERS; do mkdir -p "/sys/fs/cgroup/$c/kt-$node/daemons"; done
  if ! grep -q " $NODE_NS " /proc/self/mountinfo; then   # nsfs may only be bound onto a private mount
    mkdir -p "$NODE_NS"; mount --bind "$NODE_NS" "$NODE_NS"; mount --make-private "$NODE_NS"
  fi
  touch "$NODE_NS/$node"; unshare --mount="$NODE_NS/$node" --propagation private true
  mkdir -p "$KUBELET_DIR"
  nsenter --mount="$NODE_NS/$node" -- "$SELF" _node-mounts "$node"
}
node_mounts() { # hidden subcommand, run in a node's new mount namespace: the copies of the host's testbed mounts go
  # (and with them any hold on other nodes' namespaces); the node gets its own /run, /var/lib/kubelet and /var/log
  local d m; d=$(node_dir "$1")
  awk '{print $5}' /proc/self/mountinfo | { grep -E "^(/run|$KUBELET_DIR|/var/log|$DIR)(/|$)" || true; } | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  mount -t tmpfs -o mode=0755 "kt-$1-run" /run
  mount --bind "$d/kubelet" "$KUBELET_DIR"; mount --bind "$d/log" /var/log
}
kill_machine() { # NODE: every process of the node killed at once, containers included, its mount namespace (and with it
  # its mounts and pod network namespaces) and cgroups gone: a power cut. Its network and files stay.
  local node=$1 pids n c h cgroups frozen
  frozen=$(node_dir "$node")/frozen
  # all at once: the containers are found through the shims, which die with the rest
  cgroups=$({ node_cgroups "$node"; cat "$frozen" 2>/dev/null || true; } | sort -u)
  for n in $(seq 50); do
    pids=$(cgroup_pids $cgroups); [ -n "$pids" ] || break
    if [ "$n" = 1 ]; then log "killing every process of $node ($(wc -w <<<"$pids"), in $(wc -w <<<"$cgroups") cgroups)"; fi
    kill -KILL $pids 2>/dev/null || true
    set_freezer THAWED $cgroups   # a frozen process dies only once thawed
    sleep 0.2
  done
  [ -z "$(cgroup_pids $cgroups)" ] || die "processes of $node survived SIGKILL: $(cgroup_pids $cgroups | xargs)"
  rm -f "$DIR/pids/$node-"* "$frozen"
  if grep -q " $NODE_NS/$node " /proc/self/mountinfo; then umount "$NODE_NS/$node"; fi
  rm -f "$NODE_NS/$node"
  for c in $cgroups; do
    for h in /sys/fs/cgroup/*/"$c"; do
      if [ -d "$h" ]; then find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
  done
}
remove_node() { # NODE: its pods (gracefully if it is healthy), its processes, its Node object, network and files
  local node=$1 api=false t0=$SECONDS
  if alive kube-apiserver; then api=true; fi
  log "removing $node"
  if $api && alive "$node-kubelet" && ! node_frozen "$node" && ! node_cut "$node"; then
    kubectl cordon "$node" >/dev/null 2>&1 || true
    kubectl delete pods -A --field-selector "spec.nodeName=$node" --grace-period=1 --timeout=60s >/dev/null 2>&1 ||
      log "warning: pods of $node not deleted in time"
  fi
  kill_machine "$node"
  if $api; then  # a dead node's pods are never confirmed gone by its kubelet
    kubectl delete pods -A --field-selector "spec.nodeName=$node" --force --grace-period=0 >/dev/null 2>&1 || true
    kubectl delete node "$node" --ignore-not-found >/dev/null 2>&1 || true
  fi
  if [ -e "/run/netns/kt-$node" ]; then ip netns delete "kt-$node"; fi   # its link and routes go with it, soon:
  # the namespace is freed asynchronously (and later still while another mount namespace holds a copy of its mount)
  ip link delete "kt-$node" 2>/dev/null || true
  rm -rf "$(node_dir "$node")" "$DIR/logs/$node-"* "$DIR/logs/import-$node-"*
  log "$node removed in $((SECONDS - t0)) s"
  if [ -z "$(extra_nodes)" ]; then remove_node_host_state; fi
}
remove_node_host_state() { # once no extra node is left: the blackhole routes and the mount holding the namespaces
  local r
  for r in "$LINK_NET" "$POD_NET"; do
    if ip route show type blackhole "$r" | grep -q .; then ip route delete blackhole "$r"; fi
  done
  if grep -q " $NODE_NS " /proc/self/mountinfo; then umount "$NODE_NS"; fi
  rm -rf "$DIR/nodes"
}
boot_node() { # NODE: containerd, kubelet and kube-proxy on a fresh machine; until the node is Ready (right after a
  # kill its old Ready still shows for the grace period: then this returns before the new kubelet has reported)
  start_containerd "$1"; start_kubelet "$1"; start_kube_proxy "$1"
  wait_for "node $1 Ready" 120 node_ready "$1"
}
set_node_count() { # N: on a running cluster, adds node2..nodeN that are missing and removes the nodes above N
  local want=$1 node i pids=() added=()
  for node in $(extra_nodes); do if [ "${node#node}" -gt "$want" ]; then remove_node "$node"; fi; done
  for ((i = 2; i <= want; i++)); do
    if [ ! -d "$(node_dir "node$i")" ]; then
      create_node "node$i"; start_containerd "node$i"; import_all "node$i" & pids+=($!)
      start_kubelet "node$i"; added+=("node$i")
    fi
  done
  for node in "${added[@]}"; do start_kube_proxy "$node"; done   # each waits for its node to register
  for node in $(nodes); do wait_for "node $node Ready" 120 node_ready "$node"; done
  for i in "${pids[@]}"; do wait "$i" || die "image import failed (logs: $DIR/logs/import-*.log)"; done
}

# Faults, for tests: what a machine can suffer, done to an extra node (node1 carries the control plane).
cmd_node() { # stop|kill|start|restart|cut|connect NODE
  local action=${1:-} node=${2:-} t0=$SECONDS
  [ $# -eq 2 ] || die "usage: $0 node stop|kill|start|restart|cut|connect NODE"
  [ "$node" != node1 ] || die "node1 carries the control plane: faults apply to the extra nodes ($(extra_nodes | xargs))"
  [[ $node =~ ^node[0-9]+$ ]] && [ -d "$(node_dir "$node")" ] || die "no node $node (nodes: $(nodes | xargs))"
  case $action in
    stop)  # everything of the node stops where it is, its containers too: it answers nothing, yet holds its state
      local cgroups; cgroups=$(node_cgroups "$node"); echo "$cgroups" >"$(node_dir "$node")/frozen"
      set_freezer FROZEN $cgroups
      wait_for "$node frozen" 30 all_frozen $cgroups
      log "$node stopped: kubelet, containerd, kube-proxy and its $(($(wc -w <<<"$cgroups") - 1)) containers frozen ('$0 node start $node' thaws them)" ;;
    kill) kill_machine "$node"; log "$node killed: its processes and containers are gone ('$0 node start $node' boots it)" ;;
    start)
      if node_frozen "$node"; then
        set_freezer THAWED $(cat "$(node_dir "$node")/frozen" 2>/dev/null) "kt-$node"; rm -f "$(node_dir "$node")/frozen"; log "$node thawed"
      elif alive "$node-kubelet"; then log "$node is running"
      else new_machine "$node"; boot_node "$node"; log "$node booted in $((SECONDS - t0)) s"; fi ;;
    restart) kill_machine "$node"; new_machine "$node"; boot_node "$node"; log "$node restarted in $((SECONDS - t0)) s" ;;
    cut) ip link set "kt-$node" down; log "$node cut off: its link is down ('$0 node connect $node' restores it)" ;;
    connect)
      ip link set "kt-$node" up; ip route replace "$(node_subnet "$node")" via "$(node_ip "$node")" dev "kt-$node"
      log "$node connected" ;;
    *) die "usage: $0 node stop|kill|start|restart|cut|connect NODE" ;;
  esac
}

# ---- containerd, kubelet and kube-proxy of a node: node1 is the host; see "Extra nodes" for the others ----
write_containerd_config() { # NODE: containerd's config and the CNI network (bridge kt0 with the node's pod subnet)
  local node=$1 conf=$DIR/containerd.toml cni=$DIR/cni opt=$DIR/containerd-opt root=$DIR/containerd
  if [ "$node" != node1 ]; then conf=$(node_dir "$node")/containerd.toml cni=$(node_dir "$node")/cni
    opt=$(node_dir "$node")/containerd-opt root=$(node_dir "$node")/containerd; fi
  # restrict_oom_score_adj: this container lacks CAP_SYS_RESOURCE; without it runc fails with
  # "can't get final child's PID from pipe: EOF". An extra node's state (/run/containerd) is in its own mount namespace.
  cat >"$conf" <<EOF
version = 2
root = "$root"
state = "/run/containerd"
[grpc]
  address = "$(node_sock "$node")"
[plugins."io.containerd.internal.v1.opt"]
  path = "$opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$(cat "$DIR/snapshotter")"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni/net.d"
EOF
  mkdir -p "$cni/net.d" "$cni/ipam"
  cat >"$cni/net.d/10-kompi.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "kompi", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$cni/ipam", "ranges": [[{"subnet": "$(node_subnet "$node")", "gateway": "$(node_gw "$node")"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
}
start_containerd() { # NODE: and the pause image in it (the rest is imported by import_all)
  local node=$1
  write_containerd_config "$node"
  if [ "$node" = node1 ]; then start containerd containerd --config "$DIR/containerd.toml"
  else start_in_node "$node" containerd containerd --config "$(node_dir "$node")/containerd.toml"; fi
  wait_for "containerd of $node" 30 ctr_alive "$node"
  import_image "$CACHE/pause.tar" "$node"
}
start_kubelet() { # NODE
  local node=$1 kubeconfig=$KUBECONFIG extra=()
  # extra nodes reach the API server at the bridge address (their 127.0.0.1 is their own)
  if [ "$node" != node1 ]; then kubeconfig=$DIR/node.kubeconfig
    extra=(--volume-plugin-dir="$(node_dir "$node")/kubelet-plugins")
  else extra=(--volume-plugin-dir="$DIR/kubelet-plugins"); fi
  # no --node-ip=127.0.0.1: kubelet rejects loopback node IPs and exec/logs then fail ("no preferred addresses"); the
  # node IP is the address of the default route's interface (an extra node's link)
  start_daemon "$node" kubelet kubelet --kubeconfig="$kubeconfig" --hostname-override="$node" --root-dir="$KUBELET_DIR" \
    --cert-dir="$KUBELET_DIR/pki" "${extra[@]}" --container-runtime=remote \
    --container-runtime-endpoint="unix://$(node_sock "$node")" --pod-infra-container-image="$PAUSE" --fail-swap-on=false \
    --cgroup-driver=cgroupfs --cgroups-per-qos=false --enforce-node-allocatable= --eviction-hard= \
    --image-gc-high-threshold=100 --authentication-token-webhook=false --anonymous-auth=true \
    --authorization-mode=AlwaysAllow --read-only-port=0 --make-iptables-util-chains=false \
    --cluster-dns="$GW" --cluster-domain="$DOMAIN"
}
start_kube_proxy() { # NODE: once the node is registered (kube-proxy reads its node IP from the Node object)
  local node=$1 kubeconfig=$DIR/kube-proxy.kubeconfig cidr=$SUBNET
  if [ "$node" != node1 ]; then kubeconfig=$DIR/node-proxy.kubeconfig cidr=$POD_NET; fi
  wait_for "node $node registered" 60 kubectl get node "$node"
  # iptables mode, with the iptables on PATH (whatever backend it is). The conntrack flags at 0 leave the
  # nf_conntrack sysctls alone; it still sets net.ipv4.conf.all.route_localnet=1 (fatal if it cannot), which
  # down restores (an extra node's is its network namespace's own). Health and metrics listen on loopback only.
  start_daemon "$node" kube-proxy kube-proxy --kubeconfig="$kubeconfig" --hostname-override="$node" --proxy-mode=iptables \
    --cluster-cidr="$cidr" --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
    --conntrack-tcp-timeout-close-wait=0 --oom-score-adj=0 --healthz-bind-address=127.0.0.1:10256 \
    --metrics-bind-address=127.0.0.1:10249
}
start_daemon() { # NODE NAME CMD...: start, for node1; start_in_node for the others
  local node=$1; shift
  if [ "$node" = node1 ]; then start "$@"; else start_in_node "$node" "$@"; fi
}

cmd_up() { # [--nodes N]
  local b t0=$SECONDS p=$DIR/pki importing=() count="" node i
  while [ $# -gt 0 ]; do
    case $1 in
      --nodes) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le "$MAX_NODES" ] ||
                 die "--nodes takes a number from 1 to $MAX_NODES"; count=$2; shift 2 ;;
      *) die "usage: $0 up [--nodes N]" ;;
    esac
  done
  for b in $K8S_BINS; do [ -x "$BIN/$b" ] || die "$BIN/$b missing: run '$0 build' first"; done
  command -v kubectl >/dev/null || die "kubectl missing: run '$0 build' first"
  if alive kube-apiserver && alive kubelet && alive kube-proxy; then
    if [ -n "$count" ]; then set_node_count "$count"; fi
    for node in $(nodes); do
      if node_frozen "$node"; then log "$node is stopped: its images are left as they are"
      elif alive "$(daemon_name "$node" containerd)"; then import_all "$node"; fi
    done
    log "already up ($(nodes | xargs)); export KUBECONFIG=$KUBECONFIG"; return
  fi
  if [ -e "$DIR" ]; then log "stale state in $DIR: running down first"; cmd_down; fi
  if ctr_alive node1; then die "another containerd already serves $SOCK"; fi
  mkdir -p "$DIR"/{pki,logs,pids,host,dns/hosts.d,cni/net.d,cni/ipam}; touch "$DIR/started"
  save_host
  gen_pki
  log "creating bridge $BRIDGE with $GW/24 (pod network $SUBNET; cluster DNS listens on $GW)"
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$GW/24" dev "$BRIDGE"; ip link set "$BRIDGE" up
  # replies between pods on the bridge must pass conntrack, or Service (DNAT) traffic from pod to pod breaks
  if [ ! -f /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    log "warning: no br_netfilter: Services will not route between pods (pod -> API server still works)"
  elif [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)" != 1 ]; then
    log "setting net.bridge.bridge-nf-call-iptables = 1"; echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  fi
  pick_snapshotter
  # containerd first: the images load while the control plane starts and the kubelets register their nodes
  start_containerd node1
  import_all node1 & importing+=($!)
  for ((i = 2; i <= ${count:-1}; i++)); do
    create_node "node$i"; start_containerd "node$i"; import_all "node$i" & importing+=($!)
  done
  start dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --user=root \
    --bind-interfaces --listen-address="$GW" --hostsdir="$DIR/dns/hosts.d" --local="/$DOMAIN/" \
    --domain-needed --bogus-priv --pid-file="$DIR/dns/dnsmasq.pid" --log-facility=-
  start etcd etcd --data-dir "$DIR/etcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster default=http://127.0.0.1:2380
  # all addresses, so that pods reach it (through the kubernetes Service); it advertises the bridge address, which
  # becomes the kubernetes Endpoints (127.0.0.1 is refused: "may not be in the loopback range")
  start_apiserver
  start kube-controller-manager kube-controller-manager --kubeconfig="$KUBECONFIG" --leader-elect=false \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" --cluster-signing-cert-file="$p/ca.crt" \
    --cluster-signing-key-file="$p/ca.key" --use-service-account-credentials=true --controllers='*,-nodeipam'
  start kube-scheduler kube-scheduler --kubeconfig="$KUBECONFIG" --leader-elect=false
  for node in $(nodes); do start_kubelet "$node"; done
  start dns-sync "$SELF" _dns-sync
  for node in $(nodes); do start_kube_proxy "$node"; done
  for node in $(nodes); do wait_for "node $node Ready" 120 node_ready "$node"; done
  wait_for "ServiceAccount default/default" 60 kubectl get serviceaccount default
  wait_for "Service kubernetes ($API_SVC:443) routed by kube-proxy" 60 kubectl --server="https://$API_SVC:443" get --raw /readyz
  for i in "${importing[@]}"; do wait "$i" || die "image import failed (logs: $DIR/logs/import-*.log)"; done
  log "up in $((SECONDS - t0)) s ($(nodes | xargs)). export KUBECONFIG=$KUBECONFIG"
}

# Cluster DNS like CoreDNS: <svc>.<ns>.svc -> ClusterIP, or for headless Services the ready endpoint IPs,
# and <hostname>.<svc>.<ns>.svc for endpoints with a hostname (StatefulSet pods: hostname + subdomain).
DNS_JQ='(reduce (.items[] | select(.kind == "Service" and .spec.clusterIP == "None")) as $s
          ({}; .[$s.metadata.namespace + "/" + $s.metadata.name] = true)) as $headless
  | .items[] | .metadata as $m | "\($m.name).\($m.namespace).svc.\($d)" as $fqdn
  | if .kind == "Service" then select((.spec.clusterIP // "None") != "None") | "\(.spec.clusterIP) \($fqdn)"
    elif $headless[$m.namespace + "/" + $m.name] then (.subsets // [])[] | (.addresses // [])[]
      | (if .hostname then "\(.ip) \(.hostname).\($fqdn)" else empty end), "\(.ip) \($fqdn)"
    else empty end'
dns_sync() { # hidden subcommand: rewrite dnsmasq's hosts file every second (dnsmasq re-reads it via inotify)
  local out=$DIR/dns/hosts.d/k8s tmp=$DIR/dns/k8s.tmp
  while sleep 1; do
    kubectl get services,endpoints -A -o json 2>/dev/null | jq -r --arg d "$DOMAIN" "$DNS_JQ" >"$tmp" 2>/dev/null || continue
    cmp -s "$tmp" "$out" || mv -f "$tmp" "$out"
  done
}

sa_token() { [ -n "$(kubectl -n "$1" get serviceaccount "$2" -o 'jsonpath={.secrets[0].name}')" ]; }
JWT_CLAIMS='
import base64, json, sys, time
p = sys.stdin.read().split(".")[1]; c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
print("sub %s, bound to pod %s, audience %s, expires in %d s"
      % (c["sub"], c["kubernetes.io"]["pod"]["name"], ",".join(c["aud"]), c["exp"] - time.time()))
'
# kubectl in a pod, with no kubeconfig: it falls back to in-cluster config (KUBERNETES_SERVICE_HOST/PORT, the token,
# ca.crt and namespace under /var/run/secrets/kubernetes.io/serviceaccount)
pod_list_pods() { # NS POD CONTAINER: in-cluster 'kubectl get pods' in the pod; logs the request line and the pods listed
  local out
  out=$(kubectl -n "$1" exec "$2" -c "$3" -- kubectl get pods -o name -v=6 2>&1) || die "in-cluster kubectl get pods in $2/$3: $out"
  grep -q "GET https://$API_SVC:443/api/v1/namespaces/$1/pods?limit=500 200 OK" <<<"$out" && grep -qx "pod/$2" <<<"$out" ||
    die "in-cluster kubectl get pods in $2/$3: $out"
  log "$2/$3: in-cluster kubectl get pods: $(grep -o "GET https://$API_SVC:443/api/v1/namespaces/$1/pods?.*" <<<"$out") ->" \
    "$(grep '^pod/' <<<"$out" | xargs)"
}

cmd_check() {
  local t0=$SECONDS t1 ns=kompi-check out fq sa
  node_ready || die "node node1 is not Ready (run '$0 up')"; log "node node1 Ready"
  if [ -f "$(image_tar "$CHECK_IMAGE")" ]; then import_everywhere "$(image_tar "$CHECK_IMAGE")"
  else cmd_image "$CHECK_IMAGE" kubernetes-client; fi
  kubectl delete namespace "$ns" --ignore-not-found --timeout=120s >/dev/null
  kubectl create namespace "$ns" >/dev/null
  rm -f "$DIR/check-key" "$DIR/check-key.pub"; ssh-keygen -q -t ed25519 -N '' -C kompi-check -f "$DIR/check-key"
  kubectl -n "$ns" create secret generic ssh --from-file=id_ed25519="$DIR/check-key" \
    --from-file=authorized_keys="$DIR/check-key.pub" >/dev/null
  log "creating ServiceAccount pod-reader, bound by a RoleBinding to Role pod-reader (get, list, watch pods)"
  kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: pod-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pod-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: pod-reader, namespace: $ns}]
EOF
  # 1.20's ServiceAccount admission refuses pods that automount the token until its token Secret exists
  wait_for "token Secret of ServiceAccount pod-reader" 30 sa_token "$ns" pod-reader
  log "creating pods hello (ServiceAccount pod-reader) and projected (token in one container only), headless Service" \
    "workers, ClusterIP Service sshd (22 -> 2022), StatefulSet worker (2 replicas, sshd on 2022) in namespace $ns"
  kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  serviceAccountName: pod-reader
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: $CHECK_IMAGE, imagePullPolicy: Never,
                command: [sh, -c, 'echo hello from \$(hostname); exec sleep infinity']}]
---
apiVersion: v1
kind: Pod
metadata: {name: projected}
spec:
  serviceAccountName: pod-reader
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  volumes:
  - name: api
    projected:
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3600}
      - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}
      - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}
  containers:
  - {name: sidecar, image: $CHECK_IMAGE, imagePullPolicy: Never, command: [sleep, infinity],
     volumeMounts: [{name: api, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}]}
  - {name: mpi, image: $CHECK_IMAGE, imagePullPolicy: Never, command: [sleep, infinity]}
---
apiVersion: v1
kind: Service
metadata: {name: workers}
spec: {clusterIP: None, selector: {app: worker}, ports: [{name: ssh, port: 2022}]}
---
apiVersion: v1
kind: Service
metadata: {name: sshd}
spec: {selector: {app: worker}, ports: [{name: ssh, port: 22, targetPort: 2022}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: worker}
spec:
  serviceName: workers
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes: [{name: ssh, secret: {secretName: ssh, defaultMode: 256}}]
      containers:
      - {name: main, image: $CHECK_IMAGE, imagePullPolicy: Never, volumeMounts: [{name: ssh, mountPath: /etc/kompi-ssh}],
         readinessProbe: {tcpSocket: {port: 2022}, periodSeconds: 1},
         command: [sh, -c, 'mkdir -p /run/sshd /root/.ssh && cp /etc/kompi-ssh/* /root/.ssh/ && chmod 600 /root/.ssh/*
           && printf "Host *\n Port 2022\n StrictHostKeyChecking no\n UserKnownHostsFile /dev/null\n LogLevel ERROR\n"
           >/root/.ssh/config && ssh-keygen -A && exec /usr/sbin/sshd -D -e -p 2022']}
EOF
  t1=$SECONDS
  kubectl -n "$ns" wait --for=condition=Ready pod/hello --timeout=120s >/dev/null
  log "pod hello Ready after $((SECONDS - t1)) s"
  out=$(kubectl -n "$ns" logs hello); [ "$out" = "hello from hello" ] || die "kubectl logs hello: '$out'"
  out=$(kubectl -n "$ns" exec hello -- mpirun --allow-run-as-root --version); log "kubectl logs ok; kubectl exec ok: ${out%%$'\n'*}"
  # the API server through the kubernetes Service, with the ServiceAccount's RBAC
  pod_list_pods "$ns" hello main
  sa=system:serviceaccount:$ns:pod-reader
  if out=$(kubectl -n "$ns" exec hello -- kubectl get secrets 2>&1); then die "pod-reader may list secrets: $out"; fi
  out=${out%$'\n'command terminated with exit code *}
  [[ $out == *'(Forbidden)'*"\"$sa\" cannot list resource \"secrets\""* ]] || die "kubectl get secrets in hello: $out"
  log "hello: in-cluster kubectl get secrets: $out"
  out=$(kubectl -n "$ns" exec hello -- sh -c 'kubectl auth can-i watch pods; kubectl auth can-i list secrets; true' | xargs)
  [ "$out" = "yes no" ] || die "kubectl auth can-i in hello (watch pods, list secrets): '$out'"
  log "hello: kubectl auth can-i watch pods: yes; list secrets: no"
  # automountServiceAccountToken: false, the token projected into one container only
  kubectl -n "$ns" wait --for=condition=Ready pod/projected --timeout=120s >/dev/null
  pod_list_pods "$ns" projected sidecar
  out=$(kubectl -n "$ns" exec projected -c sidecar -- cat /var/run/secrets/kubernetes.io/serviceaccount/token |
    python3 -c "$JWT_CLAIMS") || die "projected/sidecar: no token bound to the pod"
  log "projected/sidecar: projected token: $out"
  if out=$(kubectl -n "$ns" exec projected -c mpi -- ls /var/run/secrets/kubernetes.io/serviceaccount 2>&1); then
    die "projected/mpi has /var/run/secrets/kubernetes.io/serviceaccount: $out"; fi
  log "projected/mpi: no token: ${out%$'\n'command terminated with exit code *}"
  if out=$(kubectl -n "$ns" exec projected -c mpi -- kubectl get pods 2>&1); then die "projected/mpi reached the API: $out"; fi
  log "projected/mpi: kubectl get pods fails: ${out%$'\n'command terminated with exit code *}"
  kubectl -n "$ns" rollout status statefulset/worker --timeout=180s >/dev/null
  log "StatefulSet worker (2 replicas) Ready after $((SECONDS - t1)) s"
  fq=workers.$ns.svc.$DOMAIN
  for out in worker-1.workers "worker-0.$fq" "worker-1.$fq" "$fq" "sshd.$ns.svc.$DOMAIN" kubernetes.default; do
    wait_for "DNS name $out in pod worker-0" 15 kubectl -n "$ns" exec worker-0 -- getent hosts "$out"
    log "DNS in worker-0: $out -> $(kubectl -n "$ns" exec worker-0 -- getent ahostsv4 "$out" | awk '{print $1}' | sort -u | xargs)"
  done
  # ClusterIP Service sshd (port 22 -> 2022 on the workers): from hello, then by ssh from worker-0 until both workers
  # answered (worker-0 reaching itself through its own Service needs the bridge's hairpin mode)
  wait_for "ClusterIP Service sshd:22 from pod hello" 15 kubectl -n "$ns" exec hello -- timeout 5 bash -c 'exec 3<>/dev/tcp/sshd/22'
  out=$(kubectl -n "$ns" exec hello -- timeout 5 bash -c 'exec 3<>/dev/tcp/sshd/22 && head -n 1 <&3' | tr -d '\r')
  [[ $out == SSH-2.0-* ]] || die "Service sshd:22 from hello: '$out'"
  log "hello: bash /dev/tcp/sshd/22 (ClusterIP $(kubectl -n "$ns" get service sshd -o 'jsonpath={.spec.clusterIP}')): $out"
  out=$(kubectl -n "$ns" exec worker-0 -- sh -c 'seen=; for i in $(seq 40); do h=$(ssh -p 22 sshd hostname) || exit 1
    case " $seen " in *" $h "*) ;; *) seen="$seen $h" ;; esac; [ $(echo $seen | wc -w) = 2 ] && break; done; echo $i $seen' 2>&1) ||
    die "ssh -p 22 sshd from worker-0: $out"
  [ "$(xargs -n 1 <<<"${out#* }" | sort | xargs)" = "worker-0 worker-1" ] || die "ssh -p 22 sshd from worker-0: $out"
  log "worker-0: ssh -p 22 sshd hostname, ${out%% *} connections: answered by ${out#* }"
  # Open MPI 4.1 cuts hostfile names at the first dot unless orte_keep_fqdn_hostnames is set
  log "mpiexec -n 2 in worker-0 with hostfile worker-{0,1}.$fq"
  out=$(kubectl -n "$ns" exec worker-0 -- sh -c "printf 'worker-0.$fq slots=1\nworker-1.$fq slots=1\n' >/tmp/hostfile &&
    mpiexec --allow-run-as-root -n 2 --hostfile /tmp/hostfile --mca orte_keep_fqdn_hostnames true --mca btl tcp,self \
      --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 hostname" 2>&1) || die "mpiexec failed: $out"
  [ "$(sort <<<"$out" | xargs)" = "worker-0 worker-1" ] || die "unexpected mpiexec output: $out"
  log "mpiexec output: $(xargs <<<"$out")"
  kubectl -n "$ns" delete statefulset,pod --all --grace-period=1 --timeout=120s >/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null  # the namespace controller needs another 5-25 s
  log "check passed in $((SECONDS - t0)) s (pods deleted; namespace $ns is being removed in the background)"
}

cgroup_rss() { # CGROUP...: resident memory of their processes (memory hierarchy), in MiB (page cache not counted)
  local c; for c in "$@"; do cat "/sys/fs/cgroup/memory/$c/memory.stat" 2>/dev/null || true; done |
    awk '$1 == "total_rss" { sum += $2 } END { printf "%d", sum / 1048576 }'
}
cmd_status() {
  local n pid st rss total=0 node state ready ip
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy dnsmasq dns-sync \
           $(for node in $(extra_nodes); do echo "$node-containerd $node-kubelet $node-kube-proxy"; done); do
    if alive "$n"; then read -r pid st <"$DIR/pids/$n"; rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
      total=$((total + rss)); printf '%-24s pid %-7s rss %5d MiB\n' "$n" "$pid" $((rss / 1024))
    else printf '%-24s not running\n' "$n"; fi
  done
  printf '%-24s %17d MiB\n' total $((total / 1024))
  printf '%-7s %-12s %-15s %-8s %-8s %s\n' NODE IP PODS STATE READY "RSS (extra nodes: daemons with shims + containers, MiB)"
  for node in $(nodes); do
    ready=$(kubectl get node "$node" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) || ready=-
    if [ "$node" = node1 ]; then
      ip=$(kubectl get node node1 -o 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null) || ip=-
      state=running; alive kubelet || state=down; rss=-
    else
      ip=$(node_ip "$node") rss="$(cgroup_rss "kt-$node/daemons") + $(cgroup_rss $(node_cgroups "$node" | tail -n +2))"
      if node_frozen "$node"; then state=stopped; elif ! alive "$node-kubelet"; then state=down
      elif node_cut "$node"; then state=cut; else state=running; fi
    fi
    printf '%-7s %-12s %-15s %-8s %-8s %s\n' "$node" "${ip:--}" "$(node_subnet "$node")" "$state" "${ready:--}" "$rss"
  done
  for node in $(nodes); do
    if ! node_frozen "$node" && ctr_alive "$node"; then  # REF and SIZE columns
      ctr --address "$(node_sock "$node")" -n k8s.io images ls |
        awk -v n="$node" 'NR > 1 && $1 !~ /^sha256:/ { printf "%s image %-44s %s %s\n", n, $1, $4, $5 }'
    fi
  done
}

cmd_down() {
  local m pid c node
  case $DIR in /?*/?*) ;; *) die "refusing to remove KOMPI_TESTBED_DIR=$DIR" ;; esac
  if alive kube-apiserver && alive kubelet; then
    stop kube-controller-manager; stop kube-scheduler    # so that no controller recreates pods
    for node in $(extra_nodes); do   # a node that cannot tear its pods down would hold up their deletion
      if ! alive "$node-kubelet" || node_frozen "$node" || node_cut "$node"; then remove_node "$node"; fi
    done
    log "deleting all pods (the kubelets tear down their sandboxes)"
    kubectl delete pods --all -A --grace-period=1 --timeout=90s >/dev/null 2>&1 || log "warning: pod deletion incomplete"
  fi
  for node in $(extra_nodes); do remove_node "$node"; done
  remove_node_host_state
  stop dns-sync; stop kubelet; stop kube-proxy; stop kube-controller-manager; stop kube-scheduler
  if alive containerd && ctr_alive node1; then
    for m in $(ctr --address "$SOCK" -n k8s.io tasks ls -q); do
      log "removing leftover task $m"; ctr --address "$SOCK" -n k8s.io tasks delete -f "$m" >/dev/null 2>&1 || true
    done
  fi
  stop containerd; stop kube-apiserver; stop etcd; stop dnsmasq
  for pid in /proc/[0-9]*; do  # shims of our containerd (matched by its socket) and their container processes
    m=$(tr '\0' ' ' 2>/dev/null <"$pid/cmdline") || continue
    [[ ${m%% *} == *containerd-shim* && $m == *" -address $SOCK "* ]] || continue
    for c in $(cat "$pid"/task/*/children 2>/dev/null); do log "killing container process $c"; kill -KILL "$c" 2>/dev/null || true; done
    log "killing stray shim ${pid#/proc/}"; kill -KILL "${pid#/proc/}" 2>/dev/null || true
  done
  awk '{print $5}' /proc/self/mountinfo | { grep -E "^($KUBELET_DIR|/run/containerd|$DIR)(/|$)" || true; } | sort -r |
    while read -r m; do log "umount -l $m"; umount -l "$m" || true; done
  if [ -f "$DIR/started" ]; then  # only network namespaces and pod logs created since our 'up'
    for m in /run/netns/cni-*; do
      if [ "$m" -nt "$DIR/started" ]; then log "deleting netns ${m##*/}"; ip netns delete "${m##*/}" || true; fi
    done
    find /var/log/pods /var/log/containers -mindepth 1 -maxdepth 1 -newer "$DIR/started" -exec rm -rf {} + 2>/dev/null || true
  fi
  if ip link show "$BRIDGE" >/dev/null 2>&1; then log "deleting bridge $BRIDGE"; ip link delete "$BRIDGE"; fi
  rmdir /sys/fs/cgroup/*/k8s.io/*/ /sys/fs/cgroup/*/k8s.io/ 2>/dev/null || true   # empty cgroups only
  [ ! -d "$DIR" ] || restore_host
  rm -rf "$DIR" "$KUBELET_DIR"; ctr_alive node1 || rm -rf /run/containerd
  log "down (mounts left under $KUBELET_DIR: $(grep -c " $KUBELET_DIR" /proc/self/mountinfo || true))"
}

case ${1:-} in
  build) cmd_build ;;
  image) shift; cmd_image "$@" ;;
  rootfs) shift; cmd_rootfs "$@" ;;
  kompi-rootfs) cmd_kompi_rootfs ;;
  kompi-image) shift; cmd_kompi_image "$@" ;;
  examples) shift; cmd_examples "$@" ;;
  up) shift; cmd_up "$@" ;;
  restart-apiserver) cmd_restart_apiserver ;;
  check) cmd_check ;;
  status) cmd_status ;;
  down) cmd_down ;;
  node) shift; cmd_node "$@" ;;
  _dns-sync) dns_sync ;;
  _node-mounts) node_mounts "$2" ;;
  *) sed -n '2,8s/^# \{0,1\}//p' "$SELF"; exit 2 ;;
esac
