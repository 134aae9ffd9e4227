/**
 * A tool call's `execute_tool {name}` span (kind internal, the GenAI
 * conventions' execute-tool span), made only when the application installed
 * a tracer. Its arguments and result are recorded only with content capture
 * on; a failure ends it with the error's kind alone (`error.type` is the
 * reason), since a tool's error message may quote its arguments.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { ToolCall } from "../Message.js"
import { captureContent } from "../Telemetry.js"
import { ToolExecutionError } from "../Tool.js"
import { attr, operation } from "./semconv.js"
import { nanosNow, nativeTracer } from "./tracing.js"

/** What the span knows of the tool: the name the call resolved to, and the tool's description when it exists. */
export interface ToolInfo {
  readonly name: string
  readonly description?: string | undefined
}

/**
 * Runs one tool call's `run` in its `execute_tool {name}` span, a child of
 * the span the call runs in; under Effect's built-in tracer, `run` alone.
 */
export const traced = <R>(
  call: ToolCall,
  tool: ToolInfo,
  run: Effect.Effect<string, ToolExecutionError, R>
): Effect.Effect<string, ToolExecutionError, R> =>
  Effect.withFiberRuntime((fiber) => {
    if (fiber.currentTracer === nativeTracer) return run
    const capture = fiber.getFiberRef(captureContent)
    const attributes: Record<string, unknown> = {
      [attr.operationName]: operation.executeTool,
      [attr.toolName]: tool.name,
      [attr.toolCallId]: call.id,
      [attr.toolType]: "function"
    }
    if (tool.description !== undefined && tool.description !== "") attributes[attr.toolDescription] = tool.description
    if (capture) attributes[attr.toolCallArguments] = JSON.stringify(call.arguments)
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        Effect.makeSpan(`${operation.executeTool} ${tool.name}`, {
          kind: "internal",
          attributes,
          captureStackTrace: false
        }),
        (span) =>
          Effect.onExit(restore(Effect.withParentSpan(run, span)), (exit) =>
            Effect.sync(() => {
              if (Exit.isSuccess(exit)) {
                if (capture) span.attribute(attr.toolCallResult, exit.value)
                return span.end(nanosNow(fiber), exit)
              }
              if (Cause.isInterruptedOnly(exit.cause)) return span.end(nanosNow(fiber), exit)
              // a defect is `_OTHER` to the conventions, and the span's error a handler defect
              const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
              const reason = failure?.reason ?? "handler_defect"
              span.attribute(attr.errorType, failure?.reason ?? "_OTHER")
              span.end(
                nanosNow(fiber),
                Exit.fail(
                  new ToolExecutionError({
                    toolCallId: call.id,
                    name: tool.name,
                    reason,
                    message: `tool ${JSON.stringify(tool.name)} failed (${reason})`
                  })
                )
              )
            }))
      )
    )
  })
