#!/usr/bin/env bash
# Refreshes the vendored layout library from the npm registry. The inspector's page is
# served from the binary (include_bytes!), so nothing is fetched at build or run time;
# this script is how the copy here was made, and how it is upgraded: change VERSION and
# SHA256 together, run it, and commit the result with its licence.
set -euo pipefail
VERSION=0.12.1
SHA256=b1032b7cfd2a57c54c6f0e8369d7665e19a579954f7cd20a6dae28f1912ea0d7
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "elkjs@$VERSION" >/dev/null && tar xzf "elkjs-$VERSION.tgz")
echo "$SHA256  $tmp/package/lib/elk.bundled.js" | sha256sum --check --quiet
cp "$tmp/package/lib/elk.bundled.js" "$here/elkjs/elk.bundled.js"
cp "$tmp/package/LICENSE.md" "$here/elkjs/LICENSE.md"
echo "elkjs $VERSION vendored in $here/elkjs"
