// Helper of scripts/derive-esus-schemas.sh (run it through that script, which installs the pinned
// tools this needs and passes NODE_PATH). Two steps around ts-json-schema-generator:
//
//   node derive.cjs extract API_TYPES_TS SELECTION_TXT WORK_DIR
//     Reads lib/api-types.ts with the TypeScript parser, maps every (method, path) of `paths` to
//     its operationId, keeps the paths the selection names, and writes WORK_DIR/helper.ts (the
//     selected members of `operations`, copied verbatim, plus one exported alias per
//     (operation, direction)) and WORK_DIR/ops.json (what each alias is).
//
//     Why a copy and not `import type { operations }`: ts-json-schema-generator 2.4 turns the
//     whole `operations` interface into `never` (and every alias into `{"not": {}}`) because some
//     operations of it are declared `responses: never` (getAuthGoogleStart, …). The copied members
//     are byte-for-byte those of the source; the generator type-checks the helper.
//
//   node derive.cjs split WORK_DIR OUT_DIR META_JSON
//     Splits WORK_DIR/all.schema.json (the generator's output for helper.ts) into one standalone
//     JSON Schema per alias in OUT_DIR, writes OUT_DIR/operations.json (the index the contract
//     test reads) and OUT_DIR/SOURCE.md (where it all comes from).
//
// Rewrites applied to the generator's output, and nothing else:
// - openapi-typescript writes an OpenAPI `format` as a JSDoc line `Format: uuid`, which the
//   generator keeps as `description`; it becomes `"format": "uuid"` again.
// - An optional member (`query?: {…}`) is aliased as `Exclude<…, undefined>`: `NonNullable<…>`
//   comes out as `anyOf: [{…}, {"not": {}}]`, the same set of values written less plainly.
// - The generator writes draft-07; the schemas are declared draft 2020-12, whose meaning is the
//   same for every keyword the generator used here (the script refuses tuple `items`,
//   `additionalItems` and `dependencies`, the keywords whose meaning changed), so that the
//   `uuid` format is one the validator checks.
// - `$ref`s into `definitions` are inlined (each schema stands alone).
"use strict";

const fs = require("fs");
const path = require("path");

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

function die(msg) {
    process.stderr.write(`derive.cjs: ${msg}\n`);
    process.exit(1);
}

function nameOf(member) {
    if (!member.name) return undefined;
    return member.name.text;
}

function prop(typeNode, ts, name) {
    if (!typeNode || !ts.isTypeLiteralNode(typeNode)) return undefined;
    return typeNode.members.find((m) => nameOf(m) === name);
}

function isNever(ts, node) {
    return !node || !node.type || node.type.kind === ts.SyntaxKind.NeverKeyword;
}

function readSelection(file) {
    return fs
        .readFileSync(file, "utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#"));
}

function stripSlash(p) {
    return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

function selected(selection, p) {
    const bare = stripSlash(p);
    return selection.filter((s) =>
        s.endsWith("*") ? bare.startsWith(s.slice(0, -1)) : bare === s,
    );
}

function safe(opId) {
    return opId.replace(/[^A-Za-z0-9_]/g, "_");
}

function extract(apiTypes, selectionFile, workDir) {
    const ts = require("typescript");
    const text = fs.readFileSync(apiTypes, "utf8");
    const sf = ts.createSourceFile(apiTypes, text, ts.ScriptTarget.Latest, true);
    const iface = (name) =>
        sf.statements.find((s) => ts.isInterfaceDeclaration(s) && s.name.text === name);
    const paths = iface("paths");
    const operations = iface("operations");
    if (!paths || !operations) die(`${apiTypes}: no \`interface paths\` or \`interface operations\``);

    const selection = readSelection(selectionFile);
    const used = new Set();
    const routes = [];
    for (const p of paths.members) {
        const route = nameOf(p);
        const hits = selected(selection, route);
        if (hits.length === 0) continue;
        hits.forEach((h) => used.add(h));
        for (const m of p.type.members) {
            const method = nameOf(m);
            if (!METHODS.includes(method) || isNever(ts, m)) continue;
            const t = m.type;
            if (!ts.isIndexedAccessTypeNode(t) || !ts.isLiteralTypeNode(t.indexType)) {
                die(`${route} ${method}: not operations["…"]: ${t.getText(sf)}`);
            }
            routes.push({ method: method.toUpperCase(), path: route, operationId: t.indexType.literal.text });
        }
    }
    const absent = selection.filter((s) => !used.has(s));

    const opMembers = new Map(operations.members.map((m) => [nameOf(m), m]));
    const aliases = [];
    const ops = [];
    const copied = [];
    for (const r of routes) {
        const m = opMembers.get(r.operationId);
        if (!m) die(`operation ${r.operationId} (${r.method} ${r.path}) is not in \`operations\``);
        copied.push(m.getFullText(sf));
        const at = `operations[${JSON.stringify(r.operationId)}]`;
        const op = { ...r, request: null, requestContentTypes: [], query: null, responses: [] };

        const params = prop(m.type, ts, "parameters");
        const query = prop(params && params.type, ts, "query");
        if (!isNever(ts, query)) {
            const q = `${at}["parameters"]["query"]`;
            op.query = `${safe(r.operationId)}__query`;
            aliases.push(`export type ${op.query} = ${query.questionToken ? `Exclude<${q}, undefined>` : q};`);
        }

        const body = prop(m.type, ts, "requestBody");
        if (!isNever(ts, body)) {
            const content = prop(body.type, ts, "content");
            op.requestContentTypes = content ? content.type.members.map(nameOf) : [];
            if (op.requestContentTypes.includes("application/json")) {
                const b = `${at}["requestBody"]`;
                op.request = `${safe(r.operationId)}__request`;
                aliases.push(
                    `export type ${op.request} = ${body.questionToken ? `Exclude<${b}, undefined>` : b}["content"]["application/json"];`,
                );
            }
        }

        const responses = prop(m.type, ts, "responses");
        if (!isNever(ts, responses)) {
            for (const s of responses.type.members) {
                const status = nameOf(s);
                if (!/^2\d\d$/.test(status)) continue;
                const content = prop(s.type, ts, "content");
                const types = content && ts.isTypeLiteralNode(content.type) ? content.type.members.map(nameOf) : [];
                const res = { status: Number(status), schema: null, contentTypes: types };
                if (types.includes("application/json")) {
                    res.schema = `${safe(r.operationId)}__response_${status}`;
                    aliases.push(
                        `export type ${res.schema} = ${at}["responses"]["${status}"]["content"]["application/json"];`,
                    );
                }
                op.responses.push(res);
            }
        }
        ops.push(op);
    }

    const helper =
        "// Written by scripts/esus-schemas/derive.cjs: the selected members of `operations` from\n" +
        `// ${path.basename(apiTypes)}, copied verbatim, and one alias per (operation, direction).\n` +
        "export interface operations {" +
        copied.join("") +
        "\n}\n" +
        aliases.join("\n") +
        "\n";
    fs.writeFileSync(path.join(workDir, "helper.ts"), helper);
    fs.writeFileSync(path.join(workDir, "ops.json"), JSON.stringify({ ops, absent }, null, 2) + "\n");
    process.stderr.write(
        `derive.cjs: ${ops.length} operations, ${aliases.length} schemas` +
            (absent.length ? `; not in the types: ${absent.join(", ")}` : "") +
            "\n",
    );
}

// --- split -----------------------------------------------------------------------------------

function rewrite(node, defs, depth) {
    if (depth > 64) die("a $ref cycle (or a schema nested over 64 deep)");
    if (Array.isArray(node)) return node.map((n) => rewrite(n, defs, depth + 1));
    if (!node || typeof node !== "object") return node;
    if (typeof node.$ref === "string") {
        const name = decodeURIComponent(node.$ref.replace(/^#\/definitions\//, ""));
        if (!(name in defs)) die(`unresolved $ref ${node.$ref}`);
        const { $ref, ...rest } = node;
        return rewrite({ ...defs[name], ...rest }, defs, depth + 1);
    }
    for (const k of ["additionalItems", "dependencies"]) {
        if (k in node) die(`draft-07 keyword \`${k}\` in the output: review the draft 2020-12 rewrite`);
    }
    if (Array.isArray(node.items)) die("tuple `items` in the output: review the draft 2020-12 rewrite");
    const out = {};
    for (const [k, v] of Object.entries(node)) {
        out[k] = k === "properties" || k === "patternProperties"
            ? Object.fromEntries(Object.entries(v).map(([p, s]) => [p, rewrite(s, defs, depth + 1)]))
            : rewrite(v, defs, depth + 1);
    }
    if (typeof out.description === "string") {
        const m = /^Format: ([A-Za-z0-9-]+)$/.exec(out.description.trim());
        if (m) {
            delete out.description;
            out.format = m[1];
        }
    }
    return out;
}

function sortKeys(v) {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (!v || typeof v !== "object") return v;
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
}

function write(file, value) {
    fs.writeFileSync(file, JSON.stringify(value, null, 2) + "\n");
}

function split(workDir, outDir, metaFile) {
    const meta = JSON.parse(fs.readFileSync(metaFile, "utf8"));
    const all = JSON.parse(fs.readFileSync(path.join(workDir, "all.schema.json"), "utf8"));
    const { ops, absent } = JSON.parse(fs.readFileSync(path.join(workDir, "ops.json"), "utf8"));
    const defs = all.definitions || {};
    const origin = `lib/api-types.ts of ${meta.repository} at ${meta.commit}`;

    const schemaFile = (alias, op, what) => {
        if (!alias) return null;
        if (!(alias in defs)) die(`the generator wrote no schema for ${alias}`);
        const body = rewrite(defs[alias], defs, 0);
        if (body.not && Object.keys(body.not).length === 0) {
            die(`${alias} came out as {"not": {}} (the generator read it as never)`);
        }
        const file = `${op.operationId}.${what}.schema.json`;
        write(path.join(outDir, file), {
            $schema: "https://json-schema.org/draft/2020-12/schema",
            title: `${op.method} ${op.path} (${op.operationId}): ${what}`,
            $comment: `Derived from ${origin} by scripts/derive-esus-schemas.sh; do not edit.`,
            ...sortKeys(body),
        });
        return { file, body };
    };

    const index = [];
    for (const op of ops) {
        const request = schemaFile(op.request, op, "request");
        const query = schemaFile(op.query, op, "query");
        const responses = op.responses.map((r) => {
            const s = schemaFile(r.schema, op, `response.${r.status}`);
            return { status: r.status, schema: s ? s.file : null, contentTypes: r.contentTypes };
        });
        index.push({
            operationId: op.operationId,
            method: op.method,
            path: op.path,
            request: request ? request.file : null,
            requestContentTypes: op.requestContentTypes,
            query: query ? query.file : null,
            queryParameters: query ? Object.keys(query.body.properties || {}).sort() : [],
            responses,
        });
    }
    index.sort((a, b) => (a.path + " " + a.method).localeCompare(b.path + " " + b.method));
    write(path.join(outDir, "operations.json"), {
        $comment: `Index of the schemas derived from ${origin}; do not edit: run scripts/derive-esus-schemas.sh.`,
        source: meta,
        absentFromTypes: absent,
        operations: index,
    });
    process.stderr.write(`derive.cjs: wrote ${index.length} operations to ${outDir}\n`);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "extract" && args.length === 3) extract(...args);
else if (cmd === "split" && args.length === 3) split(...args);
else die("usage: derive.cjs extract API_TYPES_TS SELECTION_TXT WORK_DIR | split WORK_DIR OUT_DIR META_JSON");
