/**
 * The `mcp_servers` section of the configuration file: each server decoded
 * with a schema (stdio command/args/env, or url/headers), `${VAR}` in env
 * and header values read from the environment as `Redacted`, every mistake
 * a `ConfigError` naming its key and never the secret; and the toolkit
 * layer built from it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inspect } from "node:util"
import * as LlmConfig from "../src/Config.js"
import * as McpToolkit from "../src/McpToolkit.js"
import { everythingEntry } from "./support/mcp.js"

const withEnv = (vars: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

const secret = "tok-SECRET-987654321"

/** The error's text, or "ok". */
const problem = (config: unknown, vars: Record<string, string> = {}) =>
  LlmConfig.mcpServers(config as LlmConfig.LlmConfigInput).pipe(
    withEnv(vars),
    Effect.match({ onFailure: (error) => String(error), onSuccess: () => "ok" })
  )

describe("LlmConfig.mcpServers", () => {
  it.effect("decodes stdio and HTTP servers, secrets from the environment as Redacted", () =>
    Effect.gen(function*() {
      const servers = yield* LlmConfig.mcpServers({
        llm: { backend: "local" },
        mcp_servers: {
          everything: {
            command: "npx",
            args: ["-y", "@modelcontextprotocol/server-everything"],
            env: { API_TOKEN: "${EVERYTHING_TOKEN}", MODE: "demo", PAIR: "${A}:${B}" },
            cwd: "/tmp",
            stderr: "ignore",
            prefix: true,
            timeout: 30,
            tool_timeouts: { "trigger-long-running-operation": "2 minutes" }
          },
          search: {
            url: "https://mcp.example.test/mcp",
            headers: { Authorization: "Bearer ${SEARCH_TOKEN}", "X-Client": "assistant" },
            timeout: "10 seconds"
          }
        }
      }).pipe(withEnv({ EVERYTHING_TOKEN: secret, SEARCH_TOKEN: secret, A: "1", B: "2" }))
      expect(servers).toHaveLength(2)
      const [stdio, http] = servers as [McpToolkit.StdioServer, McpToolkit.HttpServer]
      expect(stdio).toMatchObject({
        name: "everything",
        command: "npx",
        args: ["-y", "@modelcontextprotocol/server-everything"],
        cwd: "/tmp",
        stderr: "ignore",
        prefix: true
      })
      expect(Duration.toSeconds(stdio.timeout!)).toBe(30)
      expect(Duration.toMinutes(stdio.toolTimeouts!["trigger-long-running-operation"]!)).toBe(2)
      expect(stdio.env!.MODE).toBe("demo")
      expect(Redacted.value(stdio.env!.API_TOKEN as Redacted.Redacted<string>)).toBe(secret)
      expect(Redacted.value(stdio.env!.PAIR as Redacted.Redacted<string>)).toBe("1:2")
      expect(http).toMatchObject({ name: "search", url: "https://mcp.example.test/mcp" })
      expect(http.headers!["X-Client"]).toBe("assistant")
      expect(Redacted.value(http.headers!.Authorization as Redacted.Redacted<string>)).toBe(`Bearer ${secret}`)
      for (const shown of [String(servers), JSON.stringify(servers), inspect(servers, { depth: 10 })]) {
        expect(shown).not.toContain(secret)
      }
    }))

  it.effect("no mcp_servers section is no servers", () =>
    Effect.gen(function*() {
      expect(yield* LlmConfig.mcpServers({ llm: { backend: "local" } })).toEqual([])
    }))

  it.effect("every mistake is a ConfigError naming its key; a missing variable is named, never a value", () =>
    Effect.gen(function*() {
      const at = (server: unknown) => problem({ mcp_servers: { s: server } }, { PRESENT: secret, BROKEN: "a\nb" })
      expect(yield* problem({ mcp_servers: [1, 2] })).toMatch(/mcp_servers: expected a section of servers by name/)
      expect(yield* at(5)).toMatch(/mcp_servers\.s: expected a section of settings/)
      expect(yield* at({})).toMatch(/mcp_servers\.s: expected either command \(stdio\) or url \(Streamable HTTP\)/)
      expect(yield* at({ command: "x", url: "https://a.test" })).toMatch(/mcp_servers\.s: expected either command/)
      expect(yield* at({ command: "" })).toMatch(/mcp_servers\.s\.command: expected a command to run/)
      expect(yield* at({ command: "x", args: ["a", 1] })).toMatch(/mcp_servers\.s\.args: expected a list of strings/)
      expect(yield* at({ command: "x", stderr: "loud" })).toMatch(
        /mcp_servers\.s\.stderr: expected "inherit" or "ignore", got "loud"/
      )
      expect(yield* at({ url: "ftp://a.test" })).toMatch(/mcp_servers\.s\.url: expected an http:\/\/ or https:\/\/ URL/)
      expect(yield* at({ url: "https://a.test", timeout: "soon" })).toMatch(
        /mcp_servers\.s\.timeout: expected a duration/
      )
      expect(yield* at({ url: "https://a.test", tool_timeouts: { t: -1 } })).toMatch(
        /mcp_servers\.s\.tool_timeouts\.t: expected a non-negative number of seconds/
      )
      expect(yield* at({ url: "https://a.test", headers: { A: 5 } })).toMatch(
        /mcp_servers\.s\.headers\.A: expected text/
      )
      const missing = yield* at({ url: "https://a.test", headers: { Authorization: "Bearer ${MISSING_TOKEN}" } })
      expect(missing).toMatch(
        /mcp_servers\.s\.headers\.Authorization: expected the environment variable MISSING_TOKEN to be set/
      )
      const malformed = yield* at({ command: "x", env: { T: "${not a name}" } })
      expect(malformed).toMatch(/mcp_servers\.s\.env\.T: expected \$\{NAME\} to name an environment variable/)
      const broken = yield* at({ url: "https://a.test", headers: { X: "${BROKEN}" } })
      expect(broken).toMatch(
        /mcp_servers\.s\.headers\.X: expected a value a header can carry; it contains a line break/
      )
      const insecure = yield* at({ url: "http://mcp.example.test/mcp", headers: { X: "${PRESENT}" } })
      expect(insecure).toMatch(/mcp_servers\.s\.url: expected https:\/\/ for a remote host when headers are sent/)
      expect(yield* at({ url: "http://mcp.example.test/mcp", headers: { X: "${PRESENT}" }, allow_insecure_http: true }))
        .toBe("ok")
      for (const text of [missing, broken, insecure]) expect(text).not.toContain(secret)
    }))

  it.live("layerMcpFromFile builds the toolkit from a YAML file, and it runs the server's tools", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "mcp-config-"))
      const file = join(dir, "config.yaml")
      writeFileSync(
        file,
        [
          "llm:",
          "  backend: local",
          "mcp_servers:",
          "  everything:",
          `    command: ${JSON.stringify(process.execPath)}`,
          `    args: [${JSON.stringify(everythingEntry)}, stdio]`,
          "    stderr: ignore",
          "    timeout: 20"
        ].join("\n")
      )
      const echoed = yield* McpToolkit.McpToolkit.pipe(
        Effect.flatMap((toolkit) => toolkit.tools.get("echo")!.run({ message: "from the file" })),
        Effect.provide(LlmConfig.layerMcpFromFile(file))
      )
      expect(echoed).toBe("Echo: from the file")
    }))
})
