/**
 * The text of a reply as it will be spoken, decoded incrementally from its
 * markdown: either kept as it is, or (speakable) without the markup a
 * listener should not hear. Either way it records where the code is, so that
 * no chunk boundary falls inside it.
 *
 * One pass over the characters: plain text is copied in slices, and only the
 * few characters that may start markup are looked at. A construct whose
 * meaning depends on what follows (a backtick run, an emphasis marker, a
 * link) is held until enough of it has arrived, so the output never depends
 * on how the text was cut into deltas.
 *
 * What speakable drops: emphasis markers (`*`, `_`, `**`, `__`, `~~`) that
 * open or close a word, heading marks, block quote marks, list bullets
 * (numbered items keep their number), thematic breaks, the backticks of
 * inline code (its words are kept), link and image destinations (their text
 * is kept), backslash escapes (the character is kept), and fenced code
 * blocks whole: code is not read aloud.
 *
 * @internal
 */

/** A stretch of the output that no chunk boundary falls strictly inside: inline code, or a fenced code block. */
export interface Protected {
  readonly start: number
  /** `Infinity` while the code is still open. */
  end: number
}

/** How far a link's text and destination may run before its `[` is taken as plain text. */
const maxLinkLength = 500

const NL = 10
const CR = 13
const SPACE = 32
const TAB = 9
const BANG = 33
const HASH = 35
const LPAREN = 40
const RPAREN = 41
const STAR = 42
const PLUS = 43
const DASH = 45
const GT = 62
const LBRACKET = 91
const BACKSLASH = 92
const RBRACKET = 93
const UNDERSCORE = 95
const BACKTICK = 96
const TILDE = 126

/** Whether a character code is a space or a tab. */
const isBlank = (c: number): boolean => c === SPACE || c === TAB

/** Whether a character code is white space (a missing character, -1, counts as a line end). */
const isWhite = (c: number): boolean =>
  c === SPACE || c === NL || c === TAB || c === CR || c < 0 || (c > 127 && /\s/.test(String.fromCharCode(c)))

/** Whether a character code is a letter or a digit. */
const isWordChar = (c: number): boolean =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ||
  (c > 127 && /[\p{L}\p{N}]/u.test(String.fromCharCode(c)))

/** Whether a character code is ASCII punctuation (what a backslash escapes). */
const isAsciiPunctuation = (c: number): boolean =>
  (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)

/** The ASCII characters that may start markup in running text: all of it (speakable), or only code (kept). */
const markupTable = (codes: ReadonlyArray<number>): Uint8Array => {
  const table = new Uint8Array(128)
  for (const c of codes) table[c] = 1
  return table
}
const speakableMarkup = markupTable([NL, BACKTICK, BACKSLASH, STAR, UNDERSCORE, TILDE, LBRACKET, BANG])
const codeMarkup = markupTable([NL, BACKTICK, BACKSLASH])

/** A decision that needs characters that have not arrived yet. */
const more = -2

/** The length of the run of `c` at `i` in `s`, or `more` if the run reaches the end of what has arrived. */
const runLength = (s: string, i: number, c: number, final: boolean): number => {
  let j = i
  while (j < s.length && s.charCodeAt(j) === c) j++
  return j === s.length && !final ? more : j - i
}

/**
 * The text of a reply as it will be spoken, fed delta by delta: `feed`
 * returns the output that is settled, `end` the rest; `ranges` are the
 * protected stretches of the output, in output positions from its start.
 *
 * @internal
 */
export class SpokenText {
  /** The protected stretches of the output, in order. */
  readonly ranges: Array<Protected> = []
  /** Input not decoded yet: the start of a construct that is waiting for more. */
  private input = ""
  /** The absolute input position of `input[0]`. */
  private consumed = 0
  /** Output characters so far. */
  private written = 0
  private out = ""
  /** The character before `input[0]` (a line end at the start). */
  private prev = NL
  private lineStart = true
  /** Inside inline code: the length of its backtick run (0 outside). */
  private code = 0
  /** Inside a fenced block: its fence character and length. */
  private fenceChar = 0
  private fenceLength = 0
  /** Inside a link's text (speakable): the absolute input positions of its `]` and of its destination's `)`. */
  private linkClose = -1
  private linkEnd = -1

  constructor(private readonly speakable: boolean) {}

  /** Decodes `text`; returns the output it settles. */
  feed(text: string): string {
    this.input = this.input.length === 0 ? text : this.input + text
    return this.run(false)
  }

  /** Decodes what is left at the end of the stream; returns the rest of the output. */
  end(): string {
    const out = this.run(true)
    const last = this.ranges[this.ranges.length - 1]
    if (last !== undefined && last.end === Infinity) last.end = this.written
    return out
  }

  private emit(s: string, from: number, to: number): void {
    if (to > from) {
      this.out += s.slice(from, to)
      this.written += to - from
    }
  }

  private open(at: number): void {
    this.ranges.push({ start: at, end: Infinity })
  }

  private close(at: number): void {
    this.ranges[this.ranges.length - 1]!.end = at
  }

  private run(final: boolean): string {
    const s = this.input
    const n = s.length
    const speakable = this.speakable
    let i = 0
    /** Start of the input copied as it is but not emitted yet (emitted in one slice). */
    let lit = 0
    // the output position of input position `j` in the literal stretch from `lit`: written + (j - lit)
    scan: while (i < n) {
      if (this.fenceChar !== 0) {
        // inside a fenced block: is this line its closing fence?
        if (this.lineStart) {
          let j = i
          while (j < n && j - i < 3 && s.charCodeAt(j) === SPACE) j++
          const run = j < n ? runLength(s, j, this.fenceChar, final) : final ? 0 : more
          if (run === more) break scan
          let k = j + run
          if (run >= this.fenceLength) {
            while (k < n && isBlank(s.charCodeAt(k))) k++
            if (k === n && !final) break scan
          }
          const closes = run >= this.fenceLength && (k === n || s.charCodeAt(k) === NL)
          this.lineStart = false
          if (closes) {
            this.fenceChar = 0
            if (speakable) {
              // the block goes, its closing line end with it
              i = k < n ? k + 1 : k
              lit = i
              this.lineStart = true
            } else {
              this.close(this.written + (j + run) - lit)
              i = k
            }
            continue
          }
        }
        // a line of code: kept or dropped whole
        const eol = s.indexOf("\n", i)
        const next = eol < 0 ? n : eol + 1
        if (speakable) lit = next
        i = next
        this.lineStart = eol >= 0
        continue
      }
      if (this.lineStart) {
        // a block marker at the start of a line
        let j = i
        while (j < n && j - i < 3 && s.charCodeAt(j) === SPACE) j++
        if (j === n) {
          if (!final) break scan
          this.lineStart = false
          continue
        }
        const c = s.charCodeAt(j)
        if (c === BACKTICK || c === TILDE) {
          const run = runLength(s, j, c, final)
          if (run === more) break scan
          if (run >= 3) {
            this.fenceChar = c
            this.fenceLength = run
            this.lineStart = false
            if (speakable) {
              // the whole block goes, from its opening line (read on as a line of code)
              this.emit(s, lit, i)
              i = j + run
              lit = i
            } else {
              this.open(this.written + i - lit)
              i = j + run
            }
            continue
          }
        } else if (speakable) {
          const next = j + 1 < n ? s.charCodeAt(j + 1) : final ? -1 : more
          if (c === HASH) {
            const run = runLength(s, j, HASH, final)
            if (run === more) break scan
            const after = j + run < n ? s.charCodeAt(j + run) : final ? -1 : more
            if (after === more) break scan
            if (run <= 6 && (isBlank(after) || after === NL || after === -1)) {
              // a heading: its marks go, its words stay
              this.emit(s, lit, i)
              i = isBlank(after) ? j + run + 1 : j + run
              lit = i
              this.lineStart = false
              continue
            }
          } else if (c === GT) {
            if (next === more) break scan
            // a block quote: its mark goes; what follows may start a block of its own
            this.emit(s, lit, i)
            i = isBlank(next) ? j + 2 : j + 1
            lit = i
            continue
          } else if (c === DASH || c === STAR || c === PLUS || c === UNDERSCORE) {
            if (next === more) break scan
            if (c !== PLUS) {
              // a thematic break: three or more of the mark, alone on its line
              let k = j
              let marks = 0
              while (k < n && (s.charCodeAt(k) === c || isBlank(s.charCodeAt(k)))) {
                if (s.charCodeAt(k) === c) marks++
                k++
              }
              if (k === n && !final) break scan
              if (marks >= 3 && (k === n || s.charCodeAt(k) === NL)) {
                this.emit(s, lit, i)
                i = k < n ? k + 1 : k
                lit = i
                continue
              }
            }
            if (c !== UNDERSCORE && isBlank(next)) {
              // a bullet
              this.emit(s, lit, i)
              i = j + 2
              lit = i
              this.lineStart = false
              continue
            }
          }
        }
        this.lineStart = false
        i = j
        continue
      }
      if (this.code > 0) {
        // inline code: copied until its closing run (or the line end)
        const stop = this.linkClose >= 0 ? this.linkClose - this.consumed : -1
        let k = i
        for (; k < n && k !== stop; k++) {
          const c = s.charCodeAt(k)
          if (c === BACKTICK || c === NL) break
        }
        if (k === n) {
          i = n
          break scan
        }
        const c = s.charCodeAt(k)
        if (c !== BACKTICK) {
          // the line or the link text ends with the code still open: it ends there
          this.code = 0
          this.close(this.written + k - lit)
          i = k
          continue
        }
        const run = runLength(s, k, BACKTICK, final)
        if (run === more) {
          i = k
          break scan
        }
        if (run === this.code) {
          this.code = 0
          if (speakable) {
            this.emit(s, lit, k)
            lit = k + run
            this.close(this.written)
          } else {
            this.close(this.written + (k + run) - lit)
          }
        }
        i = k + run
        continue
      }
      // running text: copy up to the next character that may start markup
      const markup = speakable ? speakableMarkup : codeMarkup
      const stop = this.linkClose >= 0 ? this.linkClose - this.consumed : -1
      let k = i
      for (; k < n && k !== stop; k++) {
        const c = s.charCodeAt(k)
        if (c < 128 && markup[c] === 1) break
      }
      if (k === n) {
        i = n
        break scan
      }
      i = k
      if (k === stop) {
        // the end of a link's text: its destination goes
        this.emit(s, lit, k)
        i = this.linkEnd - this.consumed + 1
        lit = i
        this.linkClose = -1
        this.linkEnd = -1
        continue
      }
      const c = s.charCodeAt(k)
      if (c === NL) {
        i = k + 1
        this.lineStart = true
        continue
      }
      if (c === BACKSLASH) {
        if (k + 1 === n) {
          if (!final) break scan
          i = n
          continue
        }
        if (isAsciiPunctuation(s.charCodeAt(k + 1))) {
          // an escaped character is plain text; the backslash goes when speakable
          if (speakable) {
            this.emit(s, lit, k)
            lit = k + 1
          }
          i = k + 2
        } else {
          i = k + 1
        }
        continue
      }
      if (c === BACKTICK) {
        const run = runLength(s, k, BACKTICK, final)
        if (run === more) break scan
        this.code = run
        if (speakable) {
          this.emit(s, lit, k)
          lit = k + run
          this.open(this.written)
        } else {
          this.open(this.written + k - lit)
        }
        i = k + run
        continue
      }
      // speakable only from here
      if (c === STAR || c === UNDERSCORE || c === TILDE) {
        const run = runLength(s, k, c, final)
        if (run === more) break scan
        const before = k > 0 ? s.charCodeAt(k - 1) : this.prev
        const after = k + run < n ? s.charCodeAt(k + run) : -1
        const flanking = !(isWhite(before) && isWhite(after)) && !(isWordChar(before) && isWordChar(after))
        if (flanking && (c === TILDE ? run === 2 : run <= 3)) {
          this.emit(s, lit, k)
          lit = k + run
        }
        i = k + run
        continue
      }
      if (c === BANG) {
        if (k + 1 === n && !final) break scan
        if (k + 1 === n || s.charCodeAt(k + 1) !== LBRACKET || this.linkClose >= 0) {
          i = k + 1
          continue
        }
      }
      // `[` or `![`: a link if its `](...)` follows on the same line
      const open = c === BANG ? k + 1 : k
      if (this.linkClose >= 0) {
        i = open + 1
        continue
      }
      const link = this.findLink(s, open, final)
      if (link === more) break scan
      if (link === undefined) {
        i = open + 1
        continue
      }
      this.emit(s, lit, k)
      this.linkClose = this.consumed + link[0]
      this.linkEnd = this.consumed + link[1]
      i = open + 1
      lit = i
    }
    this.emit(s, lit, i)
    if (i > 0) this.prev = s.charCodeAt(i - 1)
    this.input = i === n ? "" : s.slice(i)
    this.consumed += i
    const out = this.out
    this.out = ""
    return out
  }

  /**
   * The `]` and `)` of a link whose `[` is at `open`: `[text](destination)` on one line,
   * `undefined` if it is none, `more` if that depends on what has not arrived.
   */
  private findLink(s: string, open: number, final: boolean): readonly [number, number] | undefined | typeof more {
    const n = s.length
    const limit = Math.min(n, open + maxLinkLength)
    let close = -1
    let k = open + 1
    for (; k < limit; k++) {
      const c = s.charCodeAt(k)
      if (c === NL || c === LBRACKET) return undefined
      if (c === BACKSLASH) k++
      else if (c === RBRACKET) {
        close = k
        break
      }
    }
    if (close < 0) return k >= n && !final && n < open + maxLinkLength ? more : undefined
    if (close + 1 === n) return final ? undefined : more
    if (s.charCodeAt(close + 1) !== LPAREN) return undefined
    let depth = 0
    for (k = close + 1; k < limit; k++) {
      const c = s.charCodeAt(k)
      if (c === NL) return undefined
      if (c === LPAREN) depth++
      else if (c === RPAREN && --depth === 0) return [close, k]
    }
    return k >= n && !final && n < open + maxLinkLength ? more : undefined
  }
}
