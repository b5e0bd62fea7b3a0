#!/bin/sh
# nas-bundle-worker: copies nas_worker, every shared library it loads and the
# dynamic loader itself into DEST, so that the worker runs inside any x86-64
# Linux image (the user's own training image) whatever its distribution and C
# library: DEST/bin/nas_worker starts DEST/lib/nas_worker with the bundled
# loader and --library-path DEST/lib. Nothing is set in the environment, so
# the processes the worker starts (a command evaluator's training script) use
# the image's own libraries. libcuda.so.1 is not bundled: it comes from the
# node's NVIDIA driver (the container toolkit mounts it into the container).
# The images in deploy/docker install this as /usr/local/bin/nas-bundle-worker;
# deploy/k8s/overlays/user-image runs it in an init container and
# deploy/docker/Dockerfile.user-image in a build stage (docs/deploy.md).
#   nas-bundle-worker DEST [WORKER]      (default WORKER: /usr/local/bin/nas_worker)
set -eu

die() { echo "nas-bundle-worker: $*" >&2; exit 1; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: nas-bundle-worker DEST [WORKER]"
dest="$1"
worker="${2:-/usr/local/bin/nas_worker}"
[ -x "$worker" ] || die "$worker is not an executable"
command -v ldd >/dev/null || die "ldd is missing (package libc-bin)"

mkdir -p "$dest/bin" "$dest/lib"
listing="$(ldd "$worker")" || die "ldd $worker failed"
if echo "$listing" | grep 'not found' | grep -v 'libcuda\.so'; then
  die "$worker: the libraries above are missing here, so they cannot be bundled"
fi
loader=""
# "libfoo.so.1 => /path/libfoo.so.1 (0x...)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)".
for lib in $(echo "$listing" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do
  cp -L "$lib" "$dest/lib/"
  case "$lib" in */ld-linux*) loader="$(basename "$lib")" ;; esac
done
[ -n "$loader" ] || die "ldd names no dynamic loader for $worker"
cp -L "$worker" "$dest/lib/nas_worker"
cat >"$dest/bin/nas_worker" <<WRAPPER
#!/bin/sh
# Written by nas-bundle-worker: nas_worker with its own loader and libraries.
here="\$(cd "\$(dirname "\$0")/.." && pwd)"
exec "\$here/lib/$loader" --library-path "\$here/lib" "\$here/lib/nas_worker" "\$@"
WRAPPER
chmod 0755 "$dest/bin/nas_worker"
echo "nas-bundle-worker: $(ls "$dest/lib" | wc -l) files, $(du -sh "$dest" | cut -f1) in $dest; run $dest/bin/nas_worker"
