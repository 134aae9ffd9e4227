// The test set Stryker runs (stryker.config.mjs): the suites that reach the
// mutated modules, not the whole suite (80 s on two cores). MUTATION_TESTS
// (comma-separated globs) narrows it further for one module.
import process from "node:process"
import { defineConfig } from "vitest/config"

/** Suites that reach errors.ts, internal/errorFactory.ts, internal/retry.ts, Context.ts, internal/toolCalls.ts, the stream session and Fallback.ts. */
const suites = [
  "test/errors.test.ts",
  "test/hostile.test.ts",
  "test/chatBackends.test.ts",
  "test/conformance.test.ts",
  "test/Fallback.test.ts",
  "test/Context.test.ts",
  "test/Stream.test.ts",
  "test/tools.test.ts",
  "test/ChatCompletions.test.ts",
  "test/Messages.test.ts",
  "test/errorShapes.test.ts",
  "test/redaction.test.ts",
  "test/breaker.test.ts",
  "test/toolCalls.test.ts",
  // written against surviving mutants (docs/MUTATION.md)
  "test/toolCallBuffer.test.ts",
  "test/contextPruning.test.ts",
  "test/errorClassification.test.ts",
  "test/fallbackEdges.test.ts",
  "test/fallbackStreams.test.ts"
]

export default defineConfig({
  test: {
    include: process.env.MUTATION_TESTS ? process.env.MUTATION_TESTS.split(",") : suites,
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
