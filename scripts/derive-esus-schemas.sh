#!/usr/bin/env bash
# Derives the JSON Schemas of the contract tests (tests/contract/esus/) from ESUS's published
# OpenAPI types: lib/api-types.ts of the public repository jmpanozzoz/esus-quickstart
# (openapi-typescript output). One schema per (operation, direction) for the routes listed in
# scripts/esus-schemas/selection.txt: the JSON request body, the query parameters, and each 2xx
# response body; plus operations.json (the index the test reads) and SOURCE.md (provenance).
#
#   scripts/derive-esus-schemas.sh                       # fetch the pinned commit with git
#   scripts/derive-esus-schemas.sh --commit SHA          # fetch another commit
#   scripts/derive-esus-schemas.sh --git-dir DIR [--commit SHA]   # a local clone or mirror (default HEAD)
#   scripts/derive-esus-schemas.sh --types FILE --commit SHA      # a copy of lib/api-types.ts
#   … [--out DIR]                                        # default tests/contract/esus
#
# Needs git, node (20 or later) and npm. The generator (ts-json-schema-generator) and the
# TypeScript parser are installed, at the versions pinned below, into a temporary folder that is
# removed afterwards: nothing of them lands in the repository. CI never runs this script; its
# output is committed. Regenerating with the same commit gives the same files.
set -euo pipefail

GENERATOR=ts-json-schema-generator@2.4.0 # 2.5+ needs node 22
TYPESCRIPT=typescript@5.9.3
REPOSITORY=jmpanozzoz/esus-quickstart
REMOTE=https://github.com/$REPOSITORY.git
FILE=lib/api-types.ts
PINNED=b72578c7b49d7bc92ad4dbe7547e9902d02effb0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$root/scripts/esus-schemas
out=$root/tests/contract/esus
commit=
git_dir=
types=

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while (($#)); do
    case $1 in
        --commit) commit=${2:?--commit needs a SHA}; shift 2 ;;
        --git-dir) git_dir=${2:?--git-dir needs a folder}; shift 2 ;;
        --types) types=${2:?--types needs a file}; shift 2 ;;
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "derive-esus-schemas: unknown argument $1" >&2; usage ;;
    esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tools" "$work/gen"

# 1. lib/api-types.ts, and the commit it is from.
if [[ -n $types ]]; then
    [[ -n $commit ]] || { echo "derive-esus-schemas: --types needs --commit (the header names it)" >&2; exit 2; }
    cp "$types" "$work/api-types.ts"
elif [[ -n $git_dir ]]; then
    commit=$(git --git-dir="$git_dir" rev-parse --verify "${commit:-HEAD}^{commit}")
    git --git-dir="$git_dir" show "$commit:$FILE" >"$work/api-types.ts"
else
    commit=${commit:-$PINNED}
    git init -q "$work/src"
    git -C "$work/src" fetch -q --depth 1 "$REMOTE" "$commit"
    commit=$(git -C "$work/src" rev-parse FETCH_HEAD)
    git -C "$work/src" show "FETCH_HEAD:$FILE" >"$work/api-types.ts"
fi
echo "derive-esus-schemas: $REPOSITORY $FILE at $commit ($(wc -l <"$work/api-types.ts") lines)" >&2

# 2. The pinned tools, in the temporary folder only.
npm install --prefix "$work/tools" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "$GENERATOR" "$TYPESCRIPT" >&2
export NODE_PATH=$work/tools/node_modules

# 3. The selected operations and one alias per (operation, direction), then the generator.
node "$here/derive.cjs" extract "$work/api-types.ts" "$here/selection.txt" "$work/gen"
gen_args=(--path helper.ts --type '*' --expose export --jsDoc extended --out all.schema.json)
(cd "$work/gen" && "$work/tools/node_modules/.bin/ts-json-schema-generator" "${gen_args[@]}")
gen_command="ts-json-schema-generator$(printf ' %q' "${gen_args[@]}")"

# 4. One standalone schema per alias, the index and the provenance header.
cat >"$work/meta.json" <<EOF
{
  "repository": "$REPOSITORY",
  "file": "$FILE",
  "commit": "$commit",
  "generator": "$GENERATOR",
  "typescript": "$TYPESCRIPT",
  "generatorCommand": "${gen_command//\\/\\\\}",
  "regenerate": "scripts/derive-esus-schemas.sh --commit $commit"
}
EOF
mkdir -p "$out"
rm -f "$out"/*.schema.json "$out/operations.json" "$out/SOURCE.md"
node "$here/derive.cjs" split "$work/gen" "$out" "$work/meta.json"

absent=$(node -e 'const i=require(process.argv[1]);console.log(i.absentFromTypes.map(p=>"- `"+p+"`").join("\n")||"- (none)")' "$out/operations.json")
count=$(ls "$out"/*.schema.json | wc -l)
cat >"$out/SOURCE.md" <<EOF
# Where these schemas come from

Generated files: do not edit. Regenerate with

    scripts/derive-esus-schemas.sh --commit $commit

(or \`--git-dir DIR\` for a local clone, \`--types FILE --commit SHA\` for a copy of the file).

| | |
|---|---|
| source repository | $REPOSITORY (public, GitHub) |
| source file | \`$FILE\` (openapi-typescript output of ESUS's OpenAPI) |
| source commit | \`$commit\` |
| generator | \`$GENERATOR\` |
| TypeScript | \`$TYPESCRIPT\` |
| generator command | \`$gen_command\` (in the folder of the helper file) |
| routes selected | \`scripts/esus-schemas/selection.txt\` |
| schemas | $count, indexed by \`operations.json\` |

How: \`scripts/esus-schemas/derive.cjs extract\` reads the file with the TypeScript parser, maps each
(method, path) of \`paths\` to its operationId and writes a helper file with the selected members
of \`operations\` copied verbatim and one alias per (operation, direction), e.g.

    export type getApi_keys__response_200 = operations["getApi-keys"]["responses"]["200"]["content"]["application/json"];

The generator turns each alias into a schema (\`additionalProperties: false\` wherever the type
has no index signature: as closed as the types are), and \`derive.cjs split\` writes one file per
alias: \`<operationId>.request.schema.json\` (JSON request body), \`<operationId>.query.schema.json\`
(the declared query parameters), \`<operationId>.response.<status>.schema.json\` (a 2xx JSON body).
An operation with no such file declares no JSON body (or no query parameter) for that direction.
The only rewrites: \`Format: X\` JSDoc lines become \`"format": "X"\` again, \`\$ref\`s are inlined, and
the schemas are declared draft 2020-12 (so that \`uuid\` is a format the validator checks).

Selected routes that lib/api-types.ts does not have:
$absent

What ESUS's docs add beyond the types is not here: it is in \`tests/contract/esus-docs-overlay.json\`,
merged by the test.
EOF
echo "derive-esus-schemas: $count schemas in $out" >&2
