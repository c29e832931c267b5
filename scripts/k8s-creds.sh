#!/usr/bin/env bash
# Makes the credentials deploy/k8s's secretGenerator reads: a CA, the
# monitors' and the managers' certificates for the names the manifests use,
# and a keyring with client.admin and mgr.mgr-0..N-1 (the managers'
# StatefulSet pod names). Then: kubectl apply -k deploy/k8s.
#   scripts/k8s-creds.sh                 # or: make k8s-creds
#   NAMESPACE=prod MANAGERS=5 MONITORS=5 scripts/k8s-creds.sh /tmp/creds
# MONSIM is the monsim binary (default bin/monsim, from make build). The
# CA's key stays in DIR; the kustomization does not ship it.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-deploy/k8s/creds}
NS=${NAMESPACE:-mgrplane}
MONITORS=${MONITORS:-3}
MANAGERS=${MANAGERS:-3}
MONSIM=${MONSIM:-bin/monsim}
hosts=()
for ((i = 0; i < MONITORS; i++)); do hosts+=("monsim-$i.monsim" "monsim-$i.monsim.$NS.svc"); done
mgrs=()
for ((i = 0; i < MANAGERS; i++)); do
  hosts+=("mgr-$i.mgr" "mgr-$i.mgr.$NS.svc")
  mgrs+=("mgr-$i")
done
hosts+=(mgr-active "mgr-active.$NS.svc" "mgr-active.$NS.svc.cluster.local")
"$MONSIM" creds init --dir "$DIR" --host "$(IFS=,; echo "${hosts[*]}")" --mgr "$(IFS=,; echo "${mgrs[*]}")"
