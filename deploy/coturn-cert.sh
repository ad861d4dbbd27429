#!/bin/sh
# Copies Caddy's certificate for coturn's name to coturn, and restarts coturn when it changed
# (docs/deploy.md runs this daily from cron). Usage: deploy/coturn-cert.sh turn.example.org
# Environment: CADDY_CERTS, TURN_GROUP (turnserver), RESTART_COTURN (systemctl restart coturn).
set -eu
name=${1:?usage: coturn-cert.sh TURN_NAME}
store=${CADDY_CERTS:-/var/lib/caddy/.local/share/caddy/certificates/acme-v02.api.letsencrypt.org-directory}
dest=/etc/coturn/certs
group=${TURN_GROUP:-turnserver}
restart=${RESTART_COTURN:-systemctl restart coturn}
mkdir -p "$dest"
changed=no
for ext in crt key; do
    if ! cmp -s "$store/$name/$name.$ext" "$dest/$name.$ext"; then
        install -m 0640 -o root -g "$group" "$store/$name/$name.$ext" "$dest/$name.$ext"
        changed=yes
    fi
done
[ "$changed" = no ] || $restart
