/**
 * Folding a stream's events into the reply they stand for: its text, its
 * reasoning (as the parts `complete` gives for the same reply), its tool
 * calls and its `Finish`. `LlmStream.collect` and the streaming tool loop
 * share it, so a streamed step records the same message a whole one does.
 *
 * @internal
 */
import { AssistantMessage, type ReasoningPart, type ToolCall } from "../Message.js"
import type { CompletionResult, StreamEvent } from "../Reply.js"
import { textPart } from "./reasoning.js"
import * as Trusted from "./trustedClass.js"

/** The `Finish` event of a stream. */
type Finish = Extract<StreamEvent, { _tag: "Finish" }>

/** A stream's events, folded one at a time; the text is kept in pieces and joined once. */
export class ReplyCollector {
  private readonly text: Array<string> = []
  private readonly reasoning: Array<string> = []
  /** Where the reasoning no `ReasoningPart` closed starts in `reasoning`. */
  private open = 0
  private readonly parts: Array<ReasoningPart> = []
  /** The complete tool calls, in order. */
  readonly toolCalls: Array<ToolCall> = []
  /** The stream's `Finish`, once seen. */
  finish: Finish | undefined

  /** Takes one event into account. */
  push(event: StreamEvent): void {
    switch (event._tag) {
      case "TextDelta":
        this.text.push(event.text)
        break
      case "ReasoningDelta":
        this.reasoning.push(event.text)
        break
      case "ReasoningPart":
        // its text came in the deltas before it
        this.parts.push(event.part)
        this.open = this.reasoning.length
        break
      case "ToolCall":
        this.toolCalls.push(event.toolCall)
        break
      case "Finish":
        this.finish = event
        break
    }
  }

  /** The text so far. */
  get content(): string {
    return this.text.join("")
  }

  /**
   * The reasoning parts: those the stream closed, then the reasoning after
   * the last of them as one part of the backend that answered.
   */
  reasoningParts(): ReadonlyArray<ReasoningPart> | undefined {
    const rest = this.reasoning.slice(this.open).join("")
    if (rest === "") return this.parts.length === 0 ? undefined : this.parts
    return [...this.parts, textPart(rest, this.finish?.metadata.provider)]
  }

  /**
   * The assistant message of the reply, with `toolCalls` (the reply's own by
   * default). Its fields are decoded already (the text, the calls and the
   * reasoning parts are instances of their classes), so it is not validated
   * again, as `Message.assistant` checks what a caller hands it (which more
   * than doubles the cost of making the message).
   */
  message(toolCalls: ReadonlyArray<ToolCall> = this.toolCalls): AssistantMessage {
    const reasoning = this.reasoningParts()
    return new AssistantMessage({
      content: this.content,
      toolCalls,
      ...(reasoning === undefined ? {} : { reasoning })
    }, true)
  }

  /** The reply as `complete` returns it; undefined when the stream had no `Finish`. */
  result(): CompletionResult | undefined {
    const finish = this.finish
    if (finish === undefined) return undefined
    const reasoningParts = this.reasoningParts()
    return Trusted.completionResult({
      content: this.content,
      model: finish.model,
      finishReason: finish.finishReason,
      toolCalls: this.toolCalls,
      usage: finish.usage,
      ...(this.reasoning.length > 0 ? { reasoning: this.reasoning.join("") } : {}),
      ...(reasoningParts === undefined ? {} : { reasoningParts }),
      metadata: finish.metadata
    })
  }
}
