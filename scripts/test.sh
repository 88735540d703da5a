#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs pytest.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k cache`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests run for real, installed only when missing.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null || need+=(prometheus)
command -v kubectl >/dev/null || need+=(kubernetes-client)   # for `kubectl kustomize`
command -v chromium >/dev/null || need+=(chromium)              # the API's page in a real browser (tests/test_page.py)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# the container stage (tests/test_container.py): build and run images without a registry
for tool in podman buildah runc debootstrap catatonit; do
    command -v $tool >/dev/null || need+=($tool)
done
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)   # podman's -p / hostPort
if [ ${#need[@]} -gt 0 ]; then
    echo "test: installing Debian packages: ${need[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash scripts/setup.sh --dev
# checkov has its own venv: its dependency pins clash with the service's.
if [ ! -x .venv-checkov/bin/checkov ]; then
    echo "test: installing checkov" >&2
    python3 -m venv .venv-checkov
    .venv-checkov/bin/python -m pip --disable-pip-version-check -q install checkov==3.3.30
fi
export HF_HUB_OFFLINE=1 BENTOML_DO_NOT_TRACK=true TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
