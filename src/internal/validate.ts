import type { CompletionOptions } from "../Llm.js"
import type { Message } from "../Message.js"

/** Function names every provider accepts. */
const toolName = /^[a-zA-Z0-9_-]{1,64}$/

const inRange = (value: number | undefined, min: number, max: number): boolean =>
  value === undefined || (Number.isFinite(value) && value >= min && value <= max)

/**
 * Checks a request before anything is sent. Returns why it is invalid, or
 * undefined when it may be sent.
 *
 * @internal
 */
export const validateRequest = (
  messages: ReadonlyArray<Message>,
  options: CompletionOptions
): string | undefined => {
  if (messages.length === 0) return "the message list is empty"
  if (!inRange(options.temperature, 0, 2)) return `temperature must be between 0 and 2, got ${options.temperature}`
  if (!inRange(options.topP, 0, 1)) return `topP must be between 0 and 1, got ${options.topP}`
  if (options.maxTokens !== undefined && !(Number.isInteger(options.maxTokens) && options.maxTokens > 0)) {
    return `maxTokens must be a positive integer, got ${options.maxTokens}`
  }
  const names = new Set<string>()
  for (const tool of options.tools ?? []) {
    if (!toolName.test(tool.name)) {
      return `tool name ${JSON.stringify(tool.name)} is not a valid function name (letters, digits, _ and -, at most 64)`
    }
    if (names.has(tool.name)) return `tool ${JSON.stringify(tool.name)} is defined twice`
    names.add(tool.name)
  }
  const choice = options.toolChoice
  if (typeof choice === "object" && !names.has(choice.name)) {
    return `toolChoice names ${JSON.stringify(choice.name)}, which is not among the tools`
  }
  // Every tool result must answer a call of the assistant message before its run of tool messages.
  let open: Set<string> | undefined
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!
    if (message.role === "tool") {
      if (open === undefined || !open.has(message.toolCallId)) {
        return `message ${i} is a tool result for ${JSON.stringify(message.toolCallId)}, which no preceding assistant tool call asked for`
      }
      open.delete(message.toolCallId)
      continue
    }
    if (open !== undefined && open.size > 0) return unanswered(open, i)
    open = message.role === "assistant" && message.toolCalls.length > 0
      ? new Set(message.toolCalls.map((call) => call.id))
      : undefined
    if (message.role === "assistant") {
      for (const call of message.toolCalls) {
        if (!toolName.test(call.name)) return `message ${i} calls ${JSON.stringify(call.name)}, not a valid function name`
      }
    }
  }
  if (open !== undefined && open.size > 0) return unanswered(open, messages.length)
  return undefined
}

const unanswered = (open: Set<string>, index: number): string =>
  `the tool calls ${[...open].map((id) => JSON.stringify(id)).join(", ")} before message ${index} have no tool result`
