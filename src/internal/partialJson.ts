/**
 * A tolerant incremental JSON parser: fed the text of a reply piece by
 * piece, it keeps the value received so far and gives it as a partial value
 * whenever asked. One pass over the text, whatever the pieces: each
 * character is read once, and a snapshot copies only the containers still
 * open (complete values are shared between snapshots, never changed again).
 *
 * What a partial value shows: containers as soon as they open, strings as
 * they grow (a dangling escape or a lone high surrogate held back), numbers
 * and `true`/`false`/`null` only once complete, a property only once its
 * value has started. So each partial extends the one before (a string grows,
 * an array gains elements, an object keys), and the last is the value the
 * whole text parses to. Invalid JSON stops the parser where it is (`failed`);
 * the decode of the whole text says what is wrong. A leading markdown code
 * fence (```` ```json ````) is skipped, and whatever follows the value.
 */

/** An object or array still open. */
interface Frame {
  readonly array: boolean
  /** Its complete members so far. */
  readonly object: Record<string, unknown> | undefined
  readonly items: Array<unknown> | undefined
  /** An object's key whose value is pending or open. */
  key: string | undefined
  /** Whether this is the array whose complete elements are reported (`elementsAt`). */
  readonly target: boolean
}

/** What the parser expects next. */
const enum State {
  /** A value (the root, after `:`, after `,` in an array). */
  Value,
  /** A value or `]` (just after `[`). */
  ValueOrClose,
  /** A key or `}` (just after `{`). */
  KeyOrClose,
  /** A key (after `,` in an object). */
  Key,
  /** `:` after a key. */
  Colon,
  /** `,` or the end of the container (after a member). */
  Next,
  /** Inside a string (a key or a value). */
  String,
  /** Inside a number or `true` / `false` / `null`. */
  Literal,
  /** Inside the opening line of a code fence. */
  Fence,
  /** The root value is complete: the rest is ignored. */
  Done,
  /** The text is not JSON: the rest is ignored. */
  Failed
}

const numberPattern = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/

const isSpace = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9

/** Sets a member the way `JSON.parse` does: `__proto__` too is an own property. */
const setMember = (object: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === "__proto__") {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
  } else object[key] = value
}

/** The characters of a simple escape (`\n`, `\"`, …), by the code of the letter after the backslash. */
const escapes: Readonly<Record<number, string>> = {
  34: "\"",
  92: "\\",
  47: "/",
  98: "\b",
  102: "\f",
  110: "\n",
  114: "\r",
  116: "\t"
}

/** No value: the open string is a key, or nothing has started. */
const none: unique symbol = Symbol("none")

/**
 * The parser of one reply.
 *
 * @internal
 */
export class PartialJson {
  private state = State.Value
  private readonly stack: Array<Frame> = []
  private root: unknown = undefined
  /** The string being read, and whether it is a key. */
  private text = ""
  private isKey = false
  /** 0: no escape; 1: after a backslash; 2 to 5: reading the four hex digits of `\u`. */
  private escape = 0
  private hex = 0
  /** The number or literal being read. */
  private literal = ""
  /** Whether a fence was skipped (only one, before the value). */
  private fenced = false
  /** Whether something visible changed since the last snapshot. */
  private changed = false
  private last: unknown = undefined
  /** Complete elements of the target array, not yet taken. */
  private elements: Array<unknown> = []

  /**
   * `elementsAt`: the path (object keys) of an array whose complete
   * elements are reported by `takeElements` (`[]`: the root).
   */
  constructor(private readonly elementsAt?: ReadonlyArray<string> | undefined) {}

  /** Whether the root value is complete. */
  get complete(): boolean {
    return this.state === State.Done
  }

  /** Whether the text is not JSON (the parser stopped there). */
  get failed(): boolean {
    return this.state === State.Failed
  }

  /** The target array's elements completed since the last call, in order. */
  takeElements(): Array<unknown> {
    const out = this.elements
    if (out.length > 0) this.elements = []
    return out
  }

  /** Reads the next piece of the text. */
  feed(chunk: string): void {
    const length = chunk.length
    let i = 0
    while (i < length) {
      const state = this.state
      if (state === State.Done || state === State.Failed) return
      if (state === State.String) {
        i = this.readString(chunk, i)
        continue
      }
      const c = chunk.charCodeAt(i)
      if (state === State.Literal) {
        // letters, digits, `-`, `+` and `.` continue a literal; anything else ends it
        if ((c >= 48 && c <= 57) || (c >= 97 && c <= 122) || c === 45 || c === 43 || c === 46 || c === 69) {
          this.literal += chunk[i]
          i++
          continue
        }
        this.endLiteral()
        continue
      }
      if (state === State.Fence) {
        if (c === 10) this.state = State.Value
        i++
        continue
      }
      i++
      if (isSpace(c)) continue
      switch (state) {
        case State.Value:
        case State.ValueOrClose:
          if (c === 93 && state === State.ValueOrClose) this.close(true)
          else if (c === 96 && !this.fenced && this.stack.length === 0) {
            this.fenced = true
            this.state = State.Fence
          } else this.startValue(c, chunk[i - 1]!)
          break
        case State.KeyOrClose:
        case State.Key:
          if (c === 34) this.startString(true)
          else if (c === 125 && state === State.KeyOrClose) this.close(false)
          else this.state = State.Failed
          break
        case State.Colon:
          this.state = c === 58 ? State.Value : State.Failed
          break
        case State.Next: {
          const frame = this.stack[this.stack.length - 1]!
          if (c === 44) this.state = frame.array ? State.Value : State.Key
          else if (c === (frame.array ? 93 : 125)) this.close(frame.array)
          else this.state = State.Failed
          break
        }
      }
    }
  }

  /** The end of the text: a number at the root ends with it. */
  end(): void {
    if (this.state === State.Literal && this.stack.length === 0) this.endLiteral()
  }

  /**
   * The value so far (undefined before one starts): the same reference as
   * the last snapshot when nothing visible changed since.
   */
  snapshot(): unknown {
    if (!this.changed) return this.last
    this.changed = false
    if (this.state === State.Done) return (this.last = this.root)
    let child: unknown = this.state === State.String && !this.isKey ? this.visibleText() : none
    for (let depth = this.stack.length - 1; depth >= 0; depth--) {
      const frame = this.stack[depth]!
      if (frame.array) {
        const items = frame.items!.slice()
        if (child !== none) items.push(child)
        child = items
      } else {
        const object = { ...frame.object! }
        if (child !== none && frame.key !== undefined) setMember(object, frame.key, child)
        child = object
      }
    }
    return (this.last = child === none ? undefined : child)
  }

  /** The open string without a trailing lone high surrogate (its pair is yet to come). */
  private visibleText(): string {
    const text = this.text
    const last = text.charCodeAt(text.length - 1)
    return last >= 0xd800 && last <= 0xdbff ? text.slice(0, -1) : text
  }

  private startValue(c: number, char: string): void {
    switch (c) {
      case 123:
        this.open(false)
        return
      case 91:
        this.open(true)
        return
      case 34:
        this.startString(false)
        return
      default:
        if ((c >= 48 && c <= 57) || c === 45 || c === 116 || c === 102 || c === 110) {
          this.literal = char
          this.state = State.Literal
        } else this.state = State.Failed
    }
  }

  private open(array: boolean): void {
    const stack = this.stack
    const path = this.elementsAt
    let target = false
    if (array && path !== undefined && stack.length === path.length) {
      target = stack.every((frame, depth) => !frame.array && frame.key === path[depth])
    }
    stack.push({
      array,
      object: array ? undefined : {},
      items: array ? [] : undefined,
      key: undefined,
      target
    })
    this.state = array ? State.ValueOrClose : State.KeyOrClose
    this.changed = true
  }

  private close(array: boolean): void {
    const frame = this.stack.pop()!
    if (frame.array !== array) {
      this.state = State.Failed
      return
    }
    this.completed(array ? frame.items : frame.object)
  }

  private startString(isKey: boolean): void {
    this.text = ""
    this.isKey = isKey
    this.escape = 0
    this.state = State.String
    // an empty string value is visible at once
    if (!isKey) this.changed = true
  }

  /** Reads string characters from `i`; returns where it stopped. */
  private readString(chunk: string, i: number): number {
    const length = chunk.length
    while (i < length) {
      if (this.escape === 1) {
        const c = chunk.charCodeAt(i++)
        if (c === 117) {
          this.escape = 2
          this.hex = 0
          continue
        }
        const char = escapes[c]
        if (char === undefined) {
          this.state = State.Failed
          return length
        }
        this.append(char)
        this.escape = 0
        continue
      }
      if (this.escape >= 2) {
        const digit = parseInt(chunk[i++]!, 16)
        if (Number.isNaN(digit)) {
          this.state = State.Failed
          return length
        }
        this.hex = this.hex * 16 + digit
        if (++this.escape === 6) {
          this.escape = 0
          this.append(String.fromCharCode(this.hex))
        }
        continue
      }
      // a run of plain characters, taken at once
      let end = i
      let c = 0
      while (end < length) {
        c = chunk.charCodeAt(end)
        if (c === 34 || c === 92 || c < 32) break
        end++
      }
      if (end > i) this.append(chunk.slice(i, end))
      if (end === length) return length
      if (c < 32) {
        // a raw control character: not JSON
        this.state = State.Failed
        return length
      }
      i = end + 1
      if (c === 92) {
        this.escape = 1
        continue
      }
      // the closing quote
      const text = this.text
      this.text = ""
      if (this.isKey) {
        this.stack[this.stack.length - 1]!.key = text
        this.state = State.Colon
      } else {
        this.completed(text)
      }
      return i
    }
    return i
  }

  private append(text: string): void {
    this.text += text
    if (!this.isKey) this.changed = true
  }

  private endLiteral(): void {
    const literal = this.literal
    this.literal = ""
    let value: unknown
    if (literal === "true") value = true
    else if (literal === "false") value = false
    else if (literal === "null") value = null
    else if (numberPattern.test(literal)) value = Number(literal)
    else {
      this.state = State.Failed
      return
    }
    this.completed(value, true)
  }

  /**
   * A value is complete: it goes into its container (or is the root). Only
   * a literal's completion shows: a string or a container was visible
   * already, as it is now.
   */
  private completed(value: unknown, literal = false): void {
    if (literal) this.changed = true
    const frame = this.stack[this.stack.length - 1]
    if (frame === undefined) {
      this.root = value
      this.state = State.Done
      return
    }
    if (frame.array) {
      frame.items!.push(value)
      if (frame.target) this.elements.push(value)
    } else {
      setMember(frame.object!, frame.key!, value)
      frame.key = undefined
    }
    this.state = State.Next
  }
}
