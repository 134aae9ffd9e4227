/**
 * `npm run build`: the published package. Declarations come from `tsc`, module
 * by module; the JavaScript from esbuild, as ES modules split at the two entry
 * points (`index.js`, `testing/index.js`) and at every dynamic import, with the
 * dependencies left as imports. A few chunks instead of seventy modules: Node
 * pays per module it loads, and importing the library costs about half the
 * memory and time (BENCHMARKS.md, "Import cost"). What only some users need
 * (`LlmConfig`'s implementation, the HttpClient transport) stays in chunks of
 * its own, loaded on first use.
 *
 *   tsx scripts/build.ts [--out-dir DIR] [--no-declarations]   (default: dist)
 */
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { rmSync } from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const flag = process.argv.indexOf("--out-dir")
const outDir = path.resolve(root, flag === -1 ? "dist" : process.argv[flag + 1] ?? "dist")

rmSync(outDir, { recursive: true, force: true })
if (!process.argv.includes("--no-declarations")) {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--emitDeclarationOnly", "--outDir", outDir], {
    cwd: root,
    stdio: "inherit"
  })
}
await build({
  entryPoints: { index: "src/index.ts", "testing/index": "src/testing/index.ts" },
  absWorkingDir: root,
  outdir: outDir,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  packages: "external",
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning"
})
