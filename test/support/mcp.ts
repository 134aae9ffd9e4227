/** Where the tests' MCP servers live, and small helpers around them. */
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type * as McpToolkit from "../../src/McpToolkit.js"

const require = createRequire(import.meta.url)

/** The reference server's entry point, installed by `npm ci` (no network). */
export const everythingEntry = join(
  dirname(require.resolve("@modelcontextprotocol/server-everything/package.json")),
  "dist",
  "index.js"
)

/** `@modelcontextprotocol/server-everything` over stdio, its stderr dropped. */
export const everything = (overrides: Partial<McpToolkit.StdioServer> = {}): McpToolkit.StdioServer => ({
  name: "everything",
  command: process.execPath,
  args: [everythingEntry, "stdio"],
  stderr: "ignore",
  ...overrides
})

/** A relay that records what a stdio server receives and answers (test/support/mcpRelay.mjs). */
export const relay = join(dirname(fileURLToPath(import.meta.url)), "mcpRelay.mjs")

/** The test stdio server (test/support/mcpStdioServer.mjs). */
export const stdioTestServer = join(dirname(fileURLToPath(import.meta.url)), "mcpStdioServer.mjs")

/** Whether a process is alive. */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Resolves when `check` holds, polling; rejects after `timeoutMs`. */
export const eventually = async (check: () => boolean, timeoutMs = 5000): Promise<void> => {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not reached in time")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
