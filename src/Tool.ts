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
import { type JsonObject, type ToolCall, ToolDefinition } from "./Message.js"

/** A tool call that could not be answered, when the loop is told to fail on it. */
export class ToolExecutionError extends Schema.TaggedError<ToolExecutionError>("effect-llm/ToolExecutionError")(
  "ToolExecutionError",
  {
    toolCallId: Schema.String,
    name: Schema.String,
    reason: Schema.Literal("unknown_tool", "invalid_arguments", "handler_failed", "handler_defect"),
    message: Schema.String
  }
) {}

/** A tool the model can call: its definition and the handler that runs it. */
export interface Tool<R = never> {
  readonly name: string
  /** What is sent to the model. */
  readonly definition: ToolDefinition
  /** Decodes the arguments and runs the handler; the result is the tool message's content. */
  readonly run: (args: JsonObject) => Effect.Effect<string, ToolExecutionError, R>
}

/** The JSON Schema of a parameters Schema, as providers want it (no `$schema`). */
export const jsonSchemaOf = <A, I, R>(schema: Schema.Schema<A, I, R>): JsonObject => {
  const { $schema: _, ...rest } = JSONSchema.make(schema) as unknown as JsonObject
  return rest
}

const render = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value) ?? "null")

/**
 * Makes a tool from a Schema: the JSON Schema sent to the model is derived
 * from it, and the handler receives the arguments decoded by it. The handler's
 * result becomes the tool message (strings as they are, anything else as JSON).
 */
export const make = <A, I, E, R, RS = never>(
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
    definition: new ToolDefinition({ name, description: options.description, parameters: jsonSchemaOf(options.parameters) }),
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

/** Decodes `ToolCall` arguments with a Schema, for callers who run tools themselves. */
export const decodeArguments = <A, I>(schema: Schema.Schema<A, I>, call: ToolCall) =>
  Schema.decodeUnknown(schema)(call.arguments)

/** A `ToolDefinition` with a hand-written JSON Schema (as in the seed). */
export const definition = (options: {
  readonly name: string
  readonly description: string
  readonly parameters: JsonObject
}): ToolDefinition => new ToolDefinition(options)

