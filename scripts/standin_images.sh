#!/usr/bin/env bash
# Build local stand-ins for the two public images the project uses, on machines that
# cannot pull from a registry (air-gapped CI). An image already present is left alone,
# so this runs once per machine.
#
#   PYTHON_IMAGE  base of the Bento's generated Dockerfile (FROM python:3.11-slim)
#   REDIS_IMAGE   the Redis sidecar of deployment/ (for `podman kube play`)
#
# The Python stand-in is Debian bookworm (debootstrap --variant=minbase), whose python3
# is 3.11, with pip, venv and a pinned uv binary (the generated Dockerfile runs
# `command -v uv || pip install uv`, and Debian's pip refuses system-wide installs).
# The Redis stand-in is that image plus Debian's redis-server (7.0, not the 7.4 of the
# tag: the manifests use only options both have). Needs root, podman and debootstrap;
# Debian packages come from DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/.."

# fully qualified names, so that `FROM python:3.11-slim` and the manifests' short names
# resolve to them without a pull
PYTHON_IMAGE=${PYTHON_IMAGE:-docker.io/library/python:3.11-slim}
REDIS_IMAGE=${REDIS_IMAGE:-docker.io/library/redis:7.4.6-alpine}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
UV_VERSION=${UV_VERSION:-0.13.9}

work=$(mktemp -d "${TMPDIR:-/tmp}/standin.XXXXXX")
trap 'rm -rf "$work"' EXIT

python_standin() {
    local rootfs="$work/rootfs"
    echo "standin: debootstrap bookworm (minbase) from $DEBIAN_MIRROR" >&2
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; return 1; }

    echo "standin: adding uv $UV_VERSION" >&2
    python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
        --platform manylinux_2_17_x86_64 --python-version 3.11 -d "$work/uv" "uv==$UV_VERSION"
    python3 - "$work/uv" "$rootfs/usr/local/bin/uv" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".data/scripts/uv"))
    target = pathlib.Path(sys.argv[2])
    target.write_bytes(zf.read(name))
    target.chmod(0o755)
PY
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log

    echo "standin: importing $PYTHON_IMAGE ($(chroot "$rootfs" python3 --version))" >&2
    tar -C "$rootfs" --numeric-owner -c . | podman import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        --message "local stand-in: Debian bookworm minbase, python3, pip, venv, uv $UV_VERSION" \
        - "$PYTHON_IMAGE" >/dev/null
}

redis_standin() {
    echo "standin: building $REDIS_IMAGE from Debian's redis-server" >&2
    cat >"$work/Containerfile" <<CONTAINERFILE
FROM $PYTHON_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \\
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
WORKDIR /data
ENTRYPOINT ["redis-server"]
CONTAINERFILE
    podman build -q --label "description=local stand-in: Debian's redis-server" \
        -t "$REDIS_IMAGE" -f "$work/Containerfile" "$work" >/dev/null
}

if podman image exists "$PYTHON_IMAGE"; then
    echo "standin: $PYTHON_IMAGE is present" >&2
else
    python_standin
fi
if podman image exists "$REDIS_IMAGE"; then
    echo "standin: $REDIS_IMAGE is present" >&2
else
    redis_standin
fi
podman image exists "$PYTHON_IMAGE" && podman image exists "$REDIS_IMAGE"
echo "standin: $PYTHON_IMAGE and $REDIS_IMAGE ready" >&2
