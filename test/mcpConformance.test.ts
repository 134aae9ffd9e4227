/**
 * The conformance of MCP tool schemas: every tool of server-everything (and
 * of the HTTP test server, and schemas written the ways backends refuse) is
 * sent through each backend's codec over loopback to the fake provider, and
 * the request body is checked against what that backend accepts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { Ajv2020 } from "ajv/dist/2020.js"
import * as Effect from "effect/Effect"
import * as McpToolkit from "../src/McpToolkit.js"
import type * as Message from "../src/Message.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { everything, everythingEntry } from "./support/mcp.js"
import * as McpHttpServer from "./support/mcpHttpServer.js"

type Json = Record<string, any>

const meta = new Ajv2020({ strict: false })

/** Every subschema of a schema, the schema itself first. */
const subschemas = (schema: unknown): Array<Json> => {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return []
  const node = schema as Json
  const children: Array<unknown> = []
  for (const key of ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]) {
    if (node[key] !== undefined) { for (const child of Object.values(node[key] as Json)) children.push(child) }
  }
  for (const key of ["allOf", "anyOf", "oneOf", "prefixItems"]) {
    if (Array.isArray(node[key])) { for (const child of node[key]) children.push(child) }
  }
  for (
    const key of [
      "items",
      "additionalProperties",
      "unevaluatedProperties",
      "unevaluatedItems",
      "contains",
      "propertyNames",
      "not",
      "if",
      "then",
      "else"
    ]
  ) if (node[key] !== undefined) children.push(node[key])
  return [node, ...children.flatMap(subschemas)]
}

/** What each wire protocol's backends refuse in a tool; empty when the tool is accepted. */
const problems = {
  chat: (tool: Json): Array<string> => {
    const out: Array<string> = []
    if (tool.type !== "function") out.push("not a function tool")
    const fn = tool.function as Json
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(fn.name)) out.push(`name ${fn.name}`)
    const parameters = fn.parameters as Json
    if (parameters.type !== "object") out.push("parameters are not an object schema")
    for (const key of ["oneOf", "anyOf", "allOf", "enum", "const", "not"]) {
      if (key in parameters) out.push(`${key} at the top level`)
    }
    for (const node of subschemas(parameters)) {
      const isArray = node.type === "array" || (Array.isArray(node.type) && node.type.includes("array"))
      if (isArray && node.items === undefined && node.prefixItems === undefined) out.push("an array without items")
      if ("$schema" in node) out.push("$schema")
    }
    if (!meta.validateSchema(parameters)) out.push(`not draft 2020-12: ${meta.errorsText(meta.errors)}`)
    return out
  },
  messages: (tool: Json): Array<string> => {
    const out: Array<string> = []
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name)) out.push(`name ${tool.name}`)
    const schema = tool.input_schema as Json
    if (schema.type !== "object") out.push("input_schema is not an object schema")
    for (const key of ["oneOf", "anyOf", "allOf"]) if (key in schema) out.push(`${key} at the top level`)
    for (const key of Object.keys(schema.properties ?? {})) {
      if (!/^[a-zA-Z0-9_.-]{1,64}$/.test(key)) out.push(`property key ${key}`)
    }
    if (!meta.validateSchema(schema)) out.push(`not draft 2020-12: ${meta.errorsText(meta.errors)}`)
    return out
  }
}

/** Tools written the ways backends refuse: each must arrive in a form they accept. */
const awkward = Effect.all([
  Tool.fromJsonSchema("draft04", {
    parameters: {
      $schema: "http://json-schema.org/draft-04/schema#",
      id: "urn:draft04",
      type: "object",
      properties: {
        n: { type: "number", minimum: 0, exclusiveMinimum: true },
        point: { type: "array", items: [{ type: "number" }, { type: "number" }], additionalItems: false }
      }
    },
    handler: () => Effect.void
  }),
  Tool.fromJsonSchema("either", {
    parameters: {
      type: "object",
      properties: { kind: { type: "string" } },
      anyOf: [{ properties: { url: { type: "string" } }, required: ["url"] }, {
        properties: { path: { type: "string" } },
        required: ["path"]
      }],
      not: { required: ["both"] }
    },
    handler: () => Effect.void
  }),
  Tool.fromJsonSchema("brackets", {
    parameters: {
      type: "object",
      properties: { "filter[id]": { type: "string" }, "page size": { type: "number" }, tags: { type: "array" } },
      required: ["filter[id]"]
    },
    handler: () => Effect.void
  })
])

/** Every tool server-everything lists, as its own SDK client sees them. */
const listedByEverything = Effect.acquireUseRelease(
  Effect.promise(async () => {
    const client = new Client({ name: "conformance", version: "1" })
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: [everythingEntry, "stdio"], stderr: "ignore" })
    )
    return client
  }),
  (client) => Effect.promise(() => client.listTools()),
  (client) => Effect.promise(() => client.close())
)

describe("MCP tool schemas against every backend", () => {
  it.live("offers every tool server-everything lists, but the one only callable as a task", () =>
    Effect.scoped(Effect.gen(function*() {
      const listed = yield* listedByEverything
      const toolkit = yield* McpToolkit.make({ servers: [everything()] })
      const taskOnly = listed.tools.filter((tool) => tool.execution?.taskSupport === "required").map((t) => t.name)
      expect(taskOnly).toEqual(["simulate-research-query"])
      expect(toolkit.definitions.map((d) => d.name).sort()).toEqual(
        listed.tools.map((tool) => tool.name).filter((name) => !taskOnly.includes(name)).sort()
      )
    })))

  for (const backend of backends) {
    it.live(`${backend.name}: every tool's request body is one the backend accepts`, () =>
      Effect.scoped(Effect.gen(function*() {
        const provider = yield* FakeProvider.make
        const http = yield* Effect.acquireRelease(
          Effect.promise(McpHttpServer.start),
          (server) => Effect.promise(server.close)
        )
        const mcp = yield* McpToolkit.make({ servers: [everything(), { name: "shop", url: http.url }] })
        const kit = Toolkit.merge(mcp, Toolkit.make(...yield* awkward))
        expect(kit.definitions.length).toBeGreaterThan(20)
        provider.enqueue({ kind: "reply", text: "ok" })
        yield* Toolkit.run([{ role: "user", content: "hi" } as Message.Message], kit).pipe(
          Effect.provide(backend.layer(provider.url))
        )
        const body = provider.requests[0]!.body as Json
        const sent = body.tools as ReadonlyArray<Json>
        expect(sent).toHaveLength(kit.definitions.length)
        const refused = sent.flatMap((tool) =>
          problems[backend.protocol](tool).map((problem) => `${tool.name ?? tool.function.name}: ${problem}`)
        )
        expect(refused).toEqual([])
        // what was sent is what the toolkit defines, nothing lost on the way
        for (const [i, definition] of kit.definitions.entries()) {
          const tool = sent[i]!
          const schema = backend.protocol === "chat" ? tool.function.parameters : tool.input_schema
          expect(schema).toEqual(definition.parameters)
        }
      })))
  }
})
