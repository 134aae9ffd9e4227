// Mutation testing (`npm run mutation`, not in CI): Stryker with its vitest
// runner over the modules whose logic is densest. One module at a time:
//   MUTATION_TESTS=test/a.test.ts,test/b.test.ts \
//     npm run mutation -- --mutate src/Context.ts --concurrency 1
// Reports go to reports/mutation/ (gitignored).

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.stryker.config.mjs", related: false },
  // Each mutant runs only the tests that reach it.
  coverageAnalysis: "perTest",
  mutate: [
    "src/errors.ts",
    "src/internal/errorFactory.ts",
    "src/internal/retry.ts",
    "src/Context.ts",
    "src/internal/toolCalls.ts",
    "src/internal/streamSession.ts",
    "src/layers/Fallback.ts"
  ],
  // Two cores, shared: one test runner.
  concurrency: 1,
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
