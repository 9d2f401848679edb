#!/usr/bin/env bash
# The side-by-side comparison of issue 5 (glint, a global lock, a socket
# store, Redis and the floor); see bench/compare for the options.
exec bash "$(dirname "$0")/../bench/compare" "$@"
