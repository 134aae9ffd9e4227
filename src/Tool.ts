/**
 * Schema-typed tools: the JSON Schema sent to the model is derived from the
 * Schema, and the handler gets arguments decoded by it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as JSONSchema from "effect/JSONSchema"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { nestsDeeperThan } from "./internal/json.js"
import { compile, forModels, upgrade } from "./internal/jsonSchema.js"
import { type JsonObject, ToolDefinition } from "./Message.js"

/**
 * A tool call that could not be answered, when the loop is told to fail on it.
 *
 * @since 0.1.0
 */
export class ToolExecutionError extends Schema.TaggedError<ToolExecutionError>("effect-llm/ToolExecutionError")(
  "ToolExecutionError",
  {
    toolCallId: Schema.String,
    name: Schema.String,
    /**
     * `timeout`: the call took longer than it may; `unavailable`: what runs
     * the tool (an MCP server) could not be reached or went away mid-call.
     */
    reason: Schema.Literal(
      "unknown_tool",
      "invalid_arguments",
      "handler_failed",
      "handler_defect",
      "timeout",
      "unavailable"
    ),
    message: Schema.String
  }
) {}

/**
 * A JSON Schema a tool cannot be built from: not an object schema, not valid
 * JSON Schema, or one that cannot be compiled (a pattern JavaScript cannot read).
 *
 * @since 0.1.0
 */
export class ToolSchemaError extends Schema.TaggedError<ToolSchemaError>("effect-llm/ToolSchemaError")(
  "ToolSchemaError",
  {
    name: Schema.String,
    message: Schema.String
  }
) {}

/**
 * A tool the model can call: its definition and the handler that runs it.
 *
 * @since 0.1.0
 */
export interface Tool<R = never> {
  readonly name: string
  /** What is sent to the model. */
  readonly definition: ToolDefinition
  /** Decodes the arguments and runs the handler; the result is the tool message's content. */
  readonly run: (args: JsonObject) => Effect.Effect<string, ToolExecutionError, R>
  /**
   * `false`: a call, once started, runs to its end even when the turn is
   * interrupted (barge-in), and its call and result are recorded; for a side
   * effect that must finish, such as sending a message. Default: true, the
   * handler's fiber is interrupted with the turn.
   */
  readonly interruptible?: boolean | undefined
  /**
   * `true`: a call of a speculative generation (`Conversation.preempt`, run
   * while the user is still speaking) waits until the turn is committed
   * before its handler runs, so a side effect never comes from words the
   * user did not finally say. Default: `interruptible === false`.
   */
  readonly waitForFinal?: boolean | undefined
}

/** The JSON Schema of a parameters Schema, as providers want it: no `$schema`, and the root itself rather than a `$ref` to it. */
const jsonSchemaOf = <A, I, R>(schema: Schema.Schema<A, I, R>): JsonObject => {
  if (isEmptyStruct(SchemaAST.encodedAST(schema.ast))) return { type: "object", properties: {} }
  const { $schema: _, ...rest } = JSONSchema.make(schema) as unknown as JsonObject
  return inlineRoot(rest)
}

/** `Schema.Struct({})`: no arguments. Its JSON Schema says "an object or an array", which no provider takes for parameters. */
const isEmptyStruct = (ast: SchemaAST.AST): boolean =>
  SchemaAST.isTypeLiteral(ast) && ast.propertySignatures.length === 0 && ast.indexSignatures.length === 0

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * A schema whose root is a `$ref` into its `$defs` (what a `Schema.Class` or
 * an `identifier` annotation gives) with that definition in place of the
 * reference: providers want the root to say `"type": "object"`. The other
 * definitions stay, and so does the inlined one if something still refers to it.
 */
const inlineRoot = (schema: JsonObject): JsonObject => {
  const { $defs: defs, $ref: ref, ...siblings } = schema
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/") || !isObject(defs)) return schema
  const name = ref.slice("#/$defs/".length).replace(/~1/g, "/").replace(/~0/g, "~")
  const root = Object.hasOwn(defs, name) ? defs[name] : undefined
  if (!isObject(root)) return schema
  const { [name]: _, ...others } = defs
  const kept = JSON.stringify([root, others]).includes(JSON.stringify(ref)) ? defs : others
  return { ...siblings, ...root, ...(Object.keys(kept).length === 0 ? {} : { $defs: kept }) }
}

const render = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value) ?? "null")

/**
 * A handler's run as a tool's: its result as the tool message (see `render`),
 * its failure and its defect as `ToolExecutionError`s. With `passThrough`, a
 * handler that fails with a `ToolExecutionError` itself keeps its reason and message.
 */
const handled = <E, R>(
  name: string,
  run: Effect.Effect<unknown, E, R>,
  passThrough: boolean
): Effect.Effect<string, ToolExecutionError, R> =>
  run.pipe(
    Effect.map(render),
    Effect.mapError((error) =>
      passThrough && error instanceof ToolExecutionError ? error : new ToolExecutionError({
        toolCallId: "",
        name,
        reason: "handler_failed",
        message: `${name} failed: ${error instanceof Error ? error.message : render(error)}`
      })
    ),
    Effect.catchAllDefect((defect) =>
      Effect.fail(
        new ToolExecutionError({
          toolCallId: "",
          name,
          reason: "handler_defect",
          message: `${name} crashed: ${defect instanceof Error ? defect.message : String(defect)}`
        })
      )
    )
  )

/**
 * Makes a tool from a Schema: the JSON Schema sent to the model is derived
 * from it, and the handler receives the arguments decoded by it. The handler's
 * result becomes the tool message (strings as they are, anything else as JSON).
 *
 * The parameters are an object (a `Schema.Struct` or `Schema.Class`): the
 * model sends its arguments as one JSON object, and every provider rejects a
 * tool whose parameters are not an object schema. A schema that does not
 * encode to an object (`Schema.String`, `Schema.Unknown`) does not type-check;
 * one that does but is not a single object schema (a `Schema.Union` of
 * structs) makes every call that offers the tool fail with
 * `LlmInvalidRequestError` before anything is sent.
 *
 * @since 0.1.0
 */
export const make = <A, I extends { readonly [key: string]: unknown }, E, R, RS = never>(
  name: string,
  options: {
    readonly description: string
    readonly parameters: Schema.Schema<A, I, RS>
    readonly handler: (args: A) => Effect.Effect<unknown, E, R>
    /** `false`: a started call finishes even when the turn is interrupted (see `Tool.interruptible`). Default true. */
    readonly interruptible?: boolean | undefined
    /** A speculative generation's call waits for the final turn (see `Tool.waitForFinal`). Default: `interruptible === false`. */
    readonly waitForFinal?: boolean | undefined
  }
): Tool<R | RS> => {
  const decode = Schema.decodeUnknown(options.parameters)
  return {
    name,
    definition: new ToolDefinition({
      name,
      description: options.description,
      parameters: jsonSchemaOf(options.parameters)
    }),
    interruptible: options.interruptible ?? true,
    waitForFinal: options.waitForFinal ?? options.interruptible === false,
    run: (args) =>
      decode(args).pipe(
        Effect.mapError((error) =>
          new ToolExecutionError({
            toolCallId: "",
            name,
            reason: "invalid_arguments",
            message: `invalid arguments for ${name}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
          })
        ),
        Effect.flatMap((decoded) => handled(name, options.handler(decoded), false))
      )
  }
}

/**
 * Makes a tool from a JSON Schema (one written by hand, or an MCP server's):
 * its arguments are checked against the schema (by Ajv, draft 2020-12; older
 * drafts' keywords are read as 2020-12's) before the handler runs, and an
 * invalid call is an `invalid_arguments` error the model sees. The schema the
 * model is sent is reshaped into what every backend accepts: an object
 * schema with no combinator or constant at its root (a root `anyOf`/`oneOf`
 * offers the union of its branches' properties; the check still applies the
 * schema itself), `items` on every array, and top-level property names
 * Anthropic accepts (others are renamed, and the handler gets the original
 * names back). Fails with `ToolSchemaError` when the schema is not an object
 * schema or cannot be compiled.
 *
 * The handler's result becomes the tool message as with `make`; a handler
 * failing with a `ToolExecutionError` sends its message to the model as it is.
 *
 * @since 0.1.0
 */
export const fromJsonSchema = <E, R>(
  name: string,
  options: {
    readonly description?: string | undefined
    readonly parameters: JsonObject
    readonly handler: (args: JsonObject) => Effect.Effect<unknown, E, R>
    /** `false`: a started call finishes even when the turn is interrupted (see `Tool.interruptible`). Default true. */
    readonly interruptible?: boolean | undefined
    /** A speculative generation's call waits for the final turn (see `Tool.waitForFinal`). Default: `interruptible === false`. */
    readonly waitForFinal?: boolean | undefined
  }
): Effect.Effect<Tool<R>, ToolSchemaError> =>
  Effect.gen(function*() {
    const refuse = (message: string) => Effect.fail(new ToolSchemaError({ name, message: `tool ${name}: ${message}` }))
    const { parameters } = options
    if (nestsDeeperThan(parameters)) return yield* refuse("its parameters schema nests too deeply")
    if (parameters.type !== undefined && parameters.type !== "object") {
      return yield* refuse(`its parameters must be an object schema, got "type": ${JSON.stringify(parameters.type)}`)
    }
    const schema = upgrade(parameters)
    const validate = yield* Effect.catchAll(compile(schema), (problem) => refuse(`its parameters schema ${problem}`))
    const view = forModels(schema)
    return {
      name,
      definition: new ToolDefinition({ name, description: options.description ?? "", parameters: view.parameters }),
      interruptible: options.interruptible ?? true,
      waitForFinal: options.waitForFinal ?? options.interruptible === false,
      run: (args) =>
        Effect.suspend(() => {
          const restored = view.restore(args)
          const problem = validate(restored)
          return problem === undefined
            ? handled(name, options.handler(restored), true)
            : Effect.fail(
              new ToolExecutionError({
                toolCallId: "",
                name,
                reason: "invalid_arguments",
                message: `invalid arguments for ${name}: ${problem}`
              })
            )
        })
    }
  })
