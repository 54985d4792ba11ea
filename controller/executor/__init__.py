"""The Kubernetes executor: worker pods for task tries, their launch, watch and results.

The pod builder (`naming`, `podspec`, `gitcheckout`, `podmerge`) is pure and imports no
Kubernetes client, so a pod can be derived and reviewed without a cluster; only the
modules that talk to the API server touch the client.
"""
