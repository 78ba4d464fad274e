// kubetasks page: submit any catalogue task, follow it (one Server-Sent Events stream over
// fetch for every live task, polling as the fallback), read its details, cancel it; queues
// with their recent backlog, schedules and workflows, polled.
// No framework, no build step, nothing from outside this origin: modules of this directory,
// one concern each, started from here. Server data only ever reaches the DOM through
// textContent and attributes, never as markup.

import { startDetails } from "./details.js";
import { setCatalogue, startForm } from "./form.js";
import { getJson, storedKey, storeKey } from "./http.js";
import { startQueues } from "./queues.js";
import { startSchedules } from "./schedules.js";
import { clearStatus, setStatus, showError } from "./status.js";
import { loadTasks, setTaskNames, startTasks } from "./tasks.js";
import { startWorkflows } from "./workflows.js";

const CATALOGUE_RETRY_MS = 5000;

async function loadCatalogue() {
  try {
    const entries = await getJson("/catalogue");
    setCatalogue(entries);
    setTaskNames(entries.map((entry) => entry.name));
    clearStatus("catalogue");
  } catch (err) {
    showError("Could not read the task catalogue", err, "catalogue");
    setTimeout(loadCatalogue, CATALOGUE_RETRY_MS);
  }
}

function startKeyForm() {
  const keyForm = document.querySelector("#key-form");
  const keyInput = document.querySelector("#api-key");
  keyInput.value = storedKey();
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!storeKey(key)) {
      setStatus("This browser does not allow storing the API key.", "error");
      return;
    }
    setStatus(key ? "API key saved." : "API key cleared.");
    loadTasks();
  });
}

startKeyForm();
startForm();
startDetails();
startTasks();
loadCatalogue();
startQueues();
startSchedules();
startWorkflows();
