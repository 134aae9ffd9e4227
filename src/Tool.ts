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
    reason: Schema.Literal("unknown_tool", "invalid_arguments", "handler_failed", "handler_defect"),
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
        Effect.flatMap((decoded) =>
          options.handler(decoded).pipe(
            Effect.map(render),
            Effect.mapError((error) =>
              new ToolExecutionError({
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
        )
      )
  }
}
