/**
 * Messages in the GenAI conventions' content format, for `gen_ai.input.messages`
 * and `gen_ai.output.messages` (recorded only with content capture on): each
 * message a role and its parts (`text`, `reasoning`, `tool_call`,
 * `tool_call_response`), serialised to a JSON string, as the conventions ask on
 * spans.
 *
 * @internal
 */
import type { Message, ReasoningPart, ToolCall } from "../Message.js"
import type { FinishReason, StreamEvent } from "../Reply.js"

type Part =
  | { readonly type: "text"; readonly content: string }
  | { readonly type: "reasoning"; readonly content: string }
  | { readonly type: "tool_call"; readonly id: string; readonly name: string; readonly arguments: unknown }
  | { readonly type: "tool_call_response"; readonly id: string; readonly result: string }

const reasoningParts = (reasoning: ReadonlyArray<ReasoningPart> | undefined): Array<Part> =>
  (reasoning ?? []).filter((part) => part.text !== "").map((part) => ({ type: "reasoning", content: part.text }))

const callParts = (calls: ReadonlyArray<ToolCall>): Array<Part> =>
  calls.map((call) => ({ type: "tool_call", id: call.id, name: call.name, arguments: call.arguments }))

const textPart = (content: string): Array<Part> => content === "" ? [] : [{ type: "text", content }]

/** The messages sent, in order, as `gen_ai.input.messages` holds them. */
export const inputMessages = (messages: ReadonlyArray<Message>): string =>
  JSON.stringify(messages.map((message) => {
    switch (message.role) {
      case "system":
      case "user":
        return { role: message.role, parts: textPart(message.content) }
      case "assistant":
        return {
          role: "assistant",
          parts: [...reasoningParts(message.reasoning), ...textPart(message.content), ...callParts(message.toolCalls)]
        }
      case "tool":
        return {
          role: "tool",
          parts: [{ type: "tool_call_response", id: message.toolCallId, result: message.content }]
        }
    }
  }))

/** One reply, as `gen_ai.output.messages` holds it: one assistant message with its finish reason. */
export const outputMessages = (reply: {
  readonly content: string
  readonly reasoning?: string | undefined
  readonly toolCalls: ReadonlyArray<ToolCall>
  readonly finishReason: FinishReason
}): string =>
  JSON.stringify([{
    role: "assistant",
    parts: [
      ...(reply.reasoning === undefined || reply.reasoning === ""
        ? []
        : [{ type: "reasoning", content: reply.reasoning }]),
      ...textPart(reply.content),
      ...callParts(reply.toolCalls)
    ],
    finish_reason: reply.finishReason
  }])

/** A streamed reply's output messages, from the batches of events delivered. */
export const streamedOutput = (
  delivered: ReadonlyArray<ReadonlyArray<StreamEvent>>,
  finishReason: FinishReason
): string => {
  const text: Array<string> = []
  const reasoning: Array<string> = []
  const toolCalls: Array<ToolCall> = []
  for (const events of delivered) {
    for (const event of events) {
      if (event._tag === "TextDelta") text.push(event.text)
      else if (event._tag === "ReasoningDelta") reasoning.push(event.text)
      else if (event._tag === "ToolCall") toolCalls.push(event.toolCall)
    }
  }
  return outputMessages({ content: text.join(""), reasoning: reasoning.join(""), toolCalls, finishReason })
}
