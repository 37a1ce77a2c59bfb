/**
 * Duplicate object members in JSON: RFC 7515 §4 / RFC 7516 §4 say a JOSE header with duplicate
 * member names MUST be rejected (or parsed last-wins, which is what JSON.parse does and what lets
 * two parsers disagree about one header). `assertNoDuplicateMembers` scans the text and throws.
 */

/** Throws a plain Error when `json` has an object with two members of the same (decoded) name. */
export function assertNoDuplicateMembers(json: string): void {
  const stack: Array<Set<string> | null> = []; // a Set per open object, null per open array
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === "\\" ? 2 : 1;
      if (j >= json.length) throw new Error("unterminated string");
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const name = JSON.parse(json.slice(i, j + 1)) as string; // decodes escapes: "a" and "\u0061" are one name
        if (top.has(name)) throw new Error(`duplicate member "${name}"`);
        top.add(name);
        expectKey = false;
      }
      i = j;
    } else if (c === "{") {
      stack.push(new Set());
      expectKey = true;
    } else if (c === "[") {
      stack.push(null);
      expectKey = false;
    } else if (c === "}" || c === "]") {
      stack.pop();
      expectKey = false;
    } else if (c === ",") {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
}
