#!/usr/bin/env node
// A native-style `solc` command over solc-js (the official compiler built to WebAssembly).
// Tools that expect a native solc (py-solc-x and so ape-solidity, slither) call `solc --version` and
// `solc --standard-json`; this answers both. The path of solc-js is baked in when the toolchain is set up
// (scripts/setup.sh), so the file keeps working after py-solc-x copies it elsewhere.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require(process.env.CREDITMESH_SOLCJS || "__SOLCJS_PATH__");

function nativeVersion() {
  // solc-js reports e.g. 0.8.28+commit.7893614a.Emscripten.clang; native builds say .Linux.g++
  return solc.version().replace(/\.Emscripten\.clang$/, ".Linux.g++");
}

function parseArgs(argv) {
  const opts = { standardJson: false, version: false, basePath: null, includePaths: [], allowPaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inlineValue] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => (inlineValue !== undefined ? inlineValue : argv[++i]);
    switch (flag) {
      case "--version": opts.version = true; break;
      case "--standard-json": opts.standardJson = true; break;
      case "--base-path": opts.basePath = value(); break;
      case "--include-path": opts.includePaths.push(value()); break;
      case "--allow-paths": opts.allowPaths.push(...value().split(",")); break;
      default:
        if (flag.startsWith("-")) {
          process.stderr.write(`solc shim: unsupported option ${flag}; use --standard-json\n`);
          process.exit(2);
        }
    }
  }
  return opts;
}

function importCallback(opts) {
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths];
  return (importPath) => {
    const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((root) => path.resolve(root, importPath));
    for (const candidate of candidates) {
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
        return { contents: fs.readFileSync(candidate, "utf8") };
      }
    }
    return { error: `File not found: ${importPath} (searched ${candidates.join(", ")})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${nativeVersion()}\n`);
    return;
  }
  if (!opts.standardJson) {
    process.stderr.write("solc shim: only --version and --standard-json are supported\n");
    process.exit(2);
  }
  const input = withImmutableReferences(fs.readFileSync(0, "utf8"));
  const output = solc.compile(input, { import: importCallback(opts) });
  recordImmutableReferences(output);
  process.stdout.write(output);
  process.stdout.write("\n");
}

// Bytecode verification (chain/verification.py) masks immutables, whose positions in the runtime code only the
// compiler knows: ask for them with every compile, whatever the caller selected.
function withImmutableReferences(input) {
  const parsed = JSON.parse(input);
  const selection = (parsed.settings && parsed.settings.outputSelection) || {};
  for (const file of Object.values(selection)) {
    const contracts = file["*"];
    if (Array.isArray(contracts) && !contracts.includes("evm.deployedBytecode.immutableReferences")) {
      contracts.push("evm.deployedBytecode.immutableReferences");
    }
  }
  return JSON.stringify(parsed);
}

// With CREDITMESH_IMMUTABLES_OUT set (scripts/setup.sh), merge {"<source path>:<contract name>": [{start, length},
// ...]} into that file, which scripts/toolchain/export_artifacts.py copies into each artifact.
function recordImmutableReferences(output) {
  const target = process.env.CREDITMESH_IMMUTABLES_OUT;
  if (!target) return;
  const parsed = JSON.parse(output);
  const known = fs.existsSync(target) ? JSON.parse(fs.readFileSync(target, "utf8")) : {};
  for (const [source, contracts] of Object.entries(parsed.contracts || {})) {
    for (const [name, contract] of Object.entries(contracts)) {
      const refs = (((contract.evm || {}).deployedBytecode || {}).immutableReferences) || {};
      known[`${source}:${name}`] = Object.values(refs).flat().sort((a, b) => a.start - b.start);
    }
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, JSON.stringify(known, null, 1) + "\n");
}

main();
