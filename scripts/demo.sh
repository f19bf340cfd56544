#!/usr/bin/env bash
# `make demo`: bring the local stack up and show that every server answers.
# (The main job joins the demo with the streaming and indexing work: see the README's status section.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
"$BIN/vectorlake" stack up
echo
echo "The stack stays up; stop it with: make down"
