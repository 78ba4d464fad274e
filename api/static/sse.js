// An incremental parser of text/event-stream, for streams read over fetch (EventSource cannot
// send the X-API-Key header).

const MAX_SSE_BUFFER = 8 * 1024 * 1024;

/** Returns push(chunk), which calls onEvent(type, data) per dispatched event. */
export function sseParser(onEvent) {
  let buffer = "";
  let type = "";
  let data = [];
  return (chunk) => {
    buffer += chunk;
    if (buffer.length > MAX_SSE_BUFFER) throw new Error("event stream line too long");
    // A trailing \r may be the first half of \r\n: keep it for the next chunk.
    const end = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, end).replace(/\r\n?/g, "\n").split("\n");
    buffer = lines.pop() + buffer.slice(end);
    for (const line of lines) {
      if (line === "") {
        if (data.length) onEvent(type || "message", data.join("\n"));
        type = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // comment, e.g. keep-alive
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
  };
}
