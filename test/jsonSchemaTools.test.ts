/**
 * Tools built from a JSON Schema (`Tool.fromJsonSchema`), toolkits merged
 * (`Toolkit.merge`), and toolkits whose tools change between steps: through
 * the tool loop and the fake provider over loopback, for every backend.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Message from "../src/Message.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const lookup = (calls: Array<Message.JsonObject>) =>
  Tool.fromJsonSchema("lookup", {
    description: "Looks a record up",
    parameters: {
      $schema: "http://json-schema.org/draft-07/schema#",
      type: "object",
      properties: {
        "record id": { type: "string", minLength: 2 },
        tags: { type: "array" },
        where: {
          type: "object",
          properties: { city: { type: "string" }, zip: { type: "string", pattern: "^[0-9]{4}$" } },
          required: ["city"]
        }
      },
      required: ["record id"],
      anyOf: [{ required: ["where"] }, { required: ["tags"] }]
    },
    handler: (args) => Effect.sync(() => calls.push(args)).pipe(Effect.as({ found: true }))
  })

describe("Tool.fromJsonSchema", () => {
  it.effect("sends the reshaped schema and hands the handler checked arguments under their own names", () =>
    Effect.gen(function*() {
      const calls: Array<Message.JsonObject> = []
      const tool = yield* lookup(calls)
      expect(tool.definition.name).toBe("lookup")
      expect(tool.definition.description).toBe("Looks a record up")
      expect(tool.definition.parameters).toEqual({
        type: "object",
        properties: {
          record_id: { type: "string", minLength: 2 },
          tags: { type: "array", items: {} },
          where: {
            type: "object",
            properties: { city: { type: "string" }, zip: { type: "string", pattern: "^[0-9]{4}$" } },
            required: ["city"]
          }
        },
        required: ["record_id"]
      })
      const result = yield* tool.run({ record_id: "r1", where: { city: "Oslo", zip: "0150" } })
      expect(result).toBe("{\"found\":true}")
      expect(calls).toEqual([{ "record id": "r1", where: { city: "Oslo", zip: "0150" } }])
    }))

  it.effect("refuses invalid arguments before the handler runs, root combinators included", () =>
    Effect.gen(function*() {
      const calls: Array<Message.JsonObject> = []
      const tool = yield* lookup(calls)
      const nested = yield* Effect.flip(tool.run({ record_id: "r1", where: { zip: "x" } }))
      expect(nested.reason).toBe("invalid_arguments")
      expect(nested.message).toContain("invalid arguments for lookup:")
      expect(nested.message).toContain("must have required property 'city'")
      expect(nested.message).toContain("must match pattern")
      const neither = yield* Effect.flip(tool.run({ record_id: "r1" }))
      expect(neither.message).toContain("must match a schema in anyOf")
      expect(calls).toEqual([])
    }))

  it.effect("turns handler failures and defects into tool errors; a ToolExecutionError passes as it is", () =>
    Effect.gen(function*() {
      const parameters = { type: "object", properties: {} }
      const failing = yield* Tool.fromJsonSchema("failing", {
        parameters,
        handler: () => Effect.fail(new Error("backend down"))
      })
      expect(yield* Effect.flip(failing.run({}))).toMatchObject({
        reason: "handler_failed",
        message: "failing failed: backend down"
      })
      const own = yield* Tool.fromJsonSchema("own", {
        parameters,
        handler: () =>
          Effect.fail(
            new Tool.ToolExecutionError({ toolCallId: "", name: "own", reason: "unavailable", message: "gone" })
          )
      })
      expect(yield* Effect.flip(own.run({}))).toMatchObject({ reason: "unavailable", message: "gone" })
      const crashing = yield* Tool.fromJsonSchema("crashing", {
        parameters,
        handler: () => Effect.die(new Error("boom"))
      })
      expect(yield* Effect.flip(crashing.run({}))).toMatchObject({
        reason: "handler_defect",
        message: "crashing crashed: boom"
      })
    }))

  it.effect("fails with ToolSchemaError on a schema that is not an object schema or not JSON Schema", () =>
    Effect.gen(function*() {
      const notObject = yield* Effect.either(
        Tool.fromJsonSchema("s", { parameters: { type: "string" }, handler: () => Effect.void })
      )
      expect(Either.isLeft(notObject) && notObject.left._tag).toBe("ToolSchemaError")
      expect(Either.isLeft(notObject) && notObject.left.message).toContain("must be an object schema")
      const invalid = yield* Effect.either(
        Tool.fromJsonSchema("s", {
          parameters: { type: "object", properties: { a: { type: "text" } } },
          handler: () => Effect.void
        })
      )
      expect(Either.isLeft(invalid) && invalid.left.message).toContain("tool s: its parameters schema")
      let deep: Record<string, unknown> = { type: "object" }
      for (let i = 0; i < 80; i++) deep = { type: "object", properties: { a: deep } }
      const tooDeep = yield* Effect.either(Tool.fromJsonSchema("s", { parameters: deep, handler: () => Effect.void }))
      expect(Either.isLeft(tooDeep) && tooDeep.left.message).toContain("nests too deeply")
    }))
})

const hello = Tool.make("hello", {
  description: "Says hello",
  parameters: Schema.Struct({}),
  handler: () => Effect.succeed("hello")
})
const otherHello = Tool.make("hello", {
  description: "Another hello",
  parameters: Schema.Struct({}),
  handler: () => Effect.succeed("other")
})
const bye = Tool.make("bye", {
  description: "Says bye",
  parameters: Schema.Struct({}),
  handler: () => Effect.succeed("bye")
})

/** A toolkit whose tools can change, as an MCP server's do. */
const mutableKit = (initial: ReadonlyArray<Tool.Tool>) => {
  let tools = [...initial]
  const kit: Toolkit.Toolkit & { set: (next: ReadonlyArray<Tool.Tool>) => void } = {
    get tools() {
      return new Map(tools.map((tool) => [tool.name, tool]))
    },
    get definitions() {
      return tools.map((tool) => tool.definition)
    },
    set: (next) => {
      tools = [...next]
    }
  }
  return kit
}

describe("Toolkit.merge", () => {
  it("puts the tools of several toolkits in one; on a name both have, the first toolkit's tool wins", () => {
    const merged = Toolkit.merge(Toolkit.make(hello), Toolkit.make(otherHello, bye))
    expect([...merged.tools.keys()]).toEqual(["hello", "bye"])
    expect(merged.definitions.map((d) => d.description)).toEqual(["Says hello", "Says bye"])
    expect(merged.tools.get("hello")).toBe(hello)
  })

  it("follows toolkits whose tools change", () => {
    const dynamic = mutableKit([bye])
    const merged = Toolkit.merge(Toolkit.make(hello), dynamic)
    expect(merged.definitions.map((d) => d.name)).toEqual(["hello", "bye"])
    dynamic.set([])
    expect(merged.definitions.map((d) => d.name)).toEqual(["hello"])
    expect(merged.tools.has("bye")).toBe(false)
  })
})

for (const backend of backends) {
  describe(`JSON Schema tools through the loop: ${backend.name}`, () => {
    const toolsSent = (server: FakeProvider.FakeProvider, i: number) => {
      const body = server.requests[i]!.body as { tools?: ReadonlyArray<Record<string, any>> }
      return (body.tools ?? []).map((tool) => (tool.function?.name ?? tool.name) as string)
    }

    it.live("an invalid call goes back to the model as an error result; a valid one runs", () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const calls: Array<Message.JsonObject> = []
        const kit = Toolkit.merge(Toolkit.make(yield* lookup(calls)), Toolkit.make(hello))
        server.enqueue(
          { kind: "reply", toolCalls: [{ id: "c1", name: "lookup", arguments: { record_id: "r" } }] },
          { kind: "reply", toolCalls: [{ id: "c2", name: "lookup", arguments: { record_id: "r1", tags: ["a"] } }] },
          { kind: "reply", text: "found it" }
        )
        const { result } = yield* Toolkit.run([Message.user("find r1")], kit).pipe(
          Effect.provide(backend.layer(server.url))
        )
        expect(result.content).toBe("found it")
        expect(calls).toEqual([{ "record id": "r1", tags: ["a"] }])
        expect(toolsSent(server, 0)).toEqual(["lookup", "hello"])
        const second = JSON.stringify(server.requests[1]!.body)
        expect(second).toContain("invalid arguments for lookup")
        if (backend.protocol === "messages") expect(second).toContain("\"is_error\":true")
      })))

    it.live("a toolkit that changes is read again at every step", () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const dynamic = mutableKit([])
        const grow = Tool.make("grow", {
          description: "Adds a tool",
          parameters: Schema.Struct({}),
          handler: () => Effect.sync(() => dynamic.set([bye])).pipe(Effect.as("grown"))
        })
        const kit = Toolkit.merge(Toolkit.make(grow), dynamic)
        server.enqueue(
          { kind: "reply", toolCalls: [{ id: "c1", name: "grow", arguments: {} }] },
          { kind: "reply", toolCalls: [{ id: "c2", name: "bye", arguments: {} }] },
          { kind: "reply", text: "done" }
        )
        const { added } = yield* Toolkit.run([Message.user("grow")], kit).pipe(
          Effect.provide(backend.layer(server.url))
        )
        expect(toolsSent(server, 0)).toEqual(["grow"])
        expect(toolsSent(server, 1)).toEqual(["grow", "bye"])
        expect(added.filter((m) => m.role === "tool").map((m) => m.content)).toEqual(["grown", "bye"])

        server.reset()
        dynamic.set([])
        server.enqueue(
          { kind: "reply", toolCalls: [{ id: "c1", name: "grow", arguments: {} }] },
          { kind: "reply", text: "streamed" }
        )
        yield* Toolkit.stream([Message.user("grow")], kit).pipe(
          Stream.runDrain,
          Effect.provide(backend.layer(server.url))
        )
        expect(toolsSent(server, 0)).toEqual(["grow"])
        expect(toolsSent(server, 1)).toEqual(["grow", "bye"])
      })))
  })
}
