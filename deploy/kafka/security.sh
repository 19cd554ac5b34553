# The broker's logins and authorizer, one copy for both Kafkas that read it: the local stack's
# (deploy/local/kafka.sh) and docker-compose.yml's (deploy/compose/kafka.sh, which mounts this file).
# Clients log in with SASL/SCRAM-SHA-512 as the admin or their service's user; the controller's
# listener takes PLAIN with one user of its own, as KRaft controllers cannot read SCRAM credentials
# before the metadata they live in; nothing is allowed that no ACL grants (docs/security.md, finding 12).
# Sourced by bash; defines functions only.

# security_properties ADMIN_PASSWORD CONTROLLER_PASSWORD LISTENER...: the server.properties lines. The
# listeners are the clients' (lower case); the first is the one brokers talk to each other on.
security_properties() {
  local admin=$1 controller=$2 listener
  shift 2
  for listener in "$@"; do echo "listener.name.$listener.sasl.enabled.mechanisms=SCRAM-SHA-512"; done
  cat <<CONF
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.$1.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller" user_controller="$controller";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
CONF
}

# scram_users PASSWORD_COMMAND USER...: kafka-storage format's arguments giving each user its SCRAM
# credentials, one per line (read them with `mapfile -t`); PASSWORD_COMMAND USER prints the password.
scram_users() {
  local password=$1 user
  shift
  for user in "$@"; do
    printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$user,password=$("$password" "$user")]"
  done
}
