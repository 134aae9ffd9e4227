/**
 * The names MCP tools are offered under: valid function names for every
 * backend, prefixed with their server's name when servers share a tool name
 * (or when asked), never two alike.
 */
import { describe, expect, it } from "@effect/vitest"
import { modelNames } from "../src/internal/mcpNames.js"

const valid = /^[a-zA-Z0-9_-]{1,64}$/

describe("modelNames", () => {
  it("keeps names that are unique and valid", () => {
    const names = modelNames([
      { server: "everything", prefix: false, tools: ["echo", "get-sum"] },
      { server: "weather", prefix: false, tools: ["forecast"] }
    ])
    expect(names).toEqual([new Map([["echo", "echo"], ["get-sum", "get-sum"]]), new Map([["forecast", "forecast"]])])
  })

  it("prefixes a name two servers share, on both servers, and nothing else", () => {
    const names = modelNames([
      { server: "a", prefix: false, tools: ["search", "only-a"] },
      { server: "b", prefix: false, tools: ["search"] }
    ])
    expect(names).toEqual([new Map([["search", "a_search"], ["only-a", "only-a"]]), new Map([["search", "b_search"]])])
  })

  it("prefixes every tool of a server that asks, and the names the others share with it", () => {
    const names = modelNames([
      { server: "files", prefix: true, tools: ["read", "write"] },
      { server: "notes", prefix: false, tools: ["read", "list"] }
    ])
    expect(names).toEqual([
      new Map([["read", "files_read"], ["write", "files_write"]]),
      new Map([["read", "notes_read"], ["list", "list"]])
    ])
  })

  it("rewrites names backends refuse (dots, slashes, too long) and keeps them apart", () => {
    const long = `tool_${"x".repeat(120)}`
    const [names] = modelNames([
      { server: "my server", prefix: true, tools: ["fs.read", "fs/read", long] }
    ])
    const values = [...names!.values()]
    for (const name of values) expect(name).toMatch(valid)
    expect(new Set(values).size).toBe(3)
    expect(names!.get("fs.read")).toBe("my_server_fs_read")
    expect(names!.get("fs/read")).toMatch(/^my_server_fs_read_[0-9a-f]{8}$/)
  })

  it("keeps a prefixed name apart from an unprefixed tool that happens to have it", () => {
    const names = modelNames([
      { server: "a", prefix: true, tools: ["b"] },
      { server: "c", prefix: false, tools: ["a_b"] }
    ])
    const all = names.flatMap((map) => [...map.values()])
    expect(new Set(all).size).toBe(2)
    expect(all).toContain("a_b")
  })

  it("does not offer one server's tool twice when it lists a name twice", () => {
    const [names] = modelNames([{ server: "a", prefix: false, tools: ["x", "x"] }])
    expect([...names!.entries()]).toEqual([["x", "x"]])
  })
})
