// Mutation testing (`npm run mutation`, not in CI): Stryker with its vitest
// runner over the modules whose logic is densest. One module at a time:
//   npm run mutation -- --mutate src/Retry.ts
// Reports go to reports/mutation/ (gitignored).
import { readFileSync } from "node:fs"

/**
 * The stream session is the `session` closure inside HttpProvider.ts: mutate
 * its lines only, found by its declaration and the closing brace at the same
 * indentation, so the range follows edits of the file.
 */
const sessionRange = () => {
  const file = "src/layers/HttpProvider.ts"
  const lines = readFileSync(file, "utf8").split("\n")
  const start = lines.findIndex((line) => line.startsWith("    const session = "))
  const end = start === -1 ? -1 : lines.findIndex((line, i) => i > start && line === "    }")
  return start === -1 || end === -1 ? file : `${file}:${start + 1}-${end + 1}`
}

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.stryker.config.mjs", related: false },
  // Each mutant runs only the tests that reach it.
  coverageAnalysis: "perTest",
  mutate: [
    "src/errors.ts",
    "src/Retry.ts",
    "src/Context.ts",
    "src/internal/toolCalls.ts",
    sessionRange(),
    "src/layers/Fallback.ts"
  ],
  // Two cores, shared: one or two test runners at most.
  concurrency: 2,
  timeoutMS: 10_000,
  timeoutFactor: 2,
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
  // The sandbox needs src, test and the configs only.
  ignorePatterns: ["bench", "examples", "scripts", "docs", "reports", "coverage", "dist", "*.md"],
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true },
  thresholds: { high: 80, low: 60, break: null }
}
