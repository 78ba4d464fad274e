// A succeeded task's result as the page shows it: an image result (the thumbnail task's
// {format, image_base64, size}) as an <img>, anything else as text. The image's data: URL is
// made only of a known image type and base64 text, so it can be nothing but an image,
// whatever the result holds.

import { formatValue, shortId } from "./format.js";

const IMAGE_TYPES = new Map([
  ["PNG", "image/png"],
  ["JPEG", "image/jpeg"],
  ["WEBP", "image/webp"],
]);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The <img> for `result`, or null when it is not an image result. */
function resultImage(result, alt) {
  if (!result || typeof result !== "object") return null;
  const type = IMAGE_TYPES.get(result.format);
  const data = result.image_base64;
  if (!type || typeof data !== "string" || !BASE64.test(data)) return null;
  const img = document.createElement("img");
  img.src = `data:${type};base64,${data}`;
  img.alt = alt;
  img.dataset.testid = "result-image";
  const [width, height] = Array.isArray(result.size) ? result.size : [];
  if (Number.isInteger(width) && Number.isInteger(height)) {
    img.width = width;
    img.height = height;
  }
  return img;
}

/** The result of a task view: its image, or its value as text. */
export function resultContent(view) {
  const alt = `Result of task ${shortId(view.task_id)}`;
  return resultImage(view.result, alt) || formatValue(view.result);
}
