#!/bin/sh
# A tiny line-oriented network device CLI for tests. sshd runs it as a
# ForceCommand (test/helpers/sshd.ts: startSshd({ forceCommand })):
#
#   device-cli.sh LOG NAME [SECRET_FILE]
#
# In an interactive session it prints a prompt ("NAME#", "NAME(config)#"),
# reads one command per line and answers it; like real device CLIs it prints
# "% Invalid input detected" for a command it does not know and still exits 0.
# Run with a command (ssh exec: $SSH_ORIGINAL_COMMAND) it answers that one and
# exits with its status. Every session and command is appended to LOG as
# "<epoch seconds.ns> <pid> <event> [command]", so tests can count sessions
# and check that commands never overlap.
LOG=$1
NAME=${2:-switch1}
SECRET_FILE=$3
PROMPT="$NAME#"
STATUS=0

log() { echo "$(date +%s.%N) $$ $*" >> "$LOG"; }

# Long commands wait in the background, so a hangup (the client closed the
# session) ends the session at once instead of after the sleep.
child=
pause() {
  sleep "$1" &
  child=$!
  wait "$child"
  child=
}

answer() {
  STATUS=0
  case "$1" in
    "") ;;
    "terminal length 0") ;;
    "show version")
      echo "Drover Test Switch Software, Version 1.0(1)"
      echo "$NAME uptime is 5 minutes"
      echo 'System image file is "flash:drover-test.bin"' ;;
    "show interfaces")
      echo "Ethernet1 is up, line protocol is up"
      echo "  0 input errors, 0 CRC"
      echo "Ethernet2 is administratively down, line protocol is down" ;;
    "show tech-support")
      pause 1
      echo "tech-support: all good" ;;
    "show logging follow")
      pause 30 ;;
    "show running-config")
      echo "hostname $NAME"
      if [ -n "$SECRET_FILE" ]; then echo "username admin secret $(cat "$SECRET_FILE")"; fi
      echo "end" ;;
    "configure terminal")
      echo "Enter configuration commands, one per line.  End with CNTL/Z."
      PROMPT="$NAME(config)#" ;;
    "interface "*)
      if [ "$PROMPT" = "$NAME#" ]; then echo "% Invalid input detected at '^' marker."; else PROMPT="$NAME(config-if)#"; fi ;;
    "description "*)
      if [ "$PROMPT" = "$NAME(config-if)#" ]; then :; else echo "% Invalid input detected at '^' marker."; fi ;;
    "end")
      PROMPT="$NAME#" ;;
    "fail")
      echo "% Error: the operation failed"
      STATUS=3 ;;
    *)
      echo "% Invalid input detected at '^' marker." ;;
  esac
}

if [ -n "$SSH_ORIGINAL_COMMAND" ]; then
  log session-start exec
  log cmd-start "$SSH_ORIGINAL_COMMAND"
  answer "$SSH_ORIGINAL_COMMAND"
  log cmd-end "$SSH_ORIGINAL_COMMAND"
  log session-end
  exit $STATUS
fi

ended=
finish() {
  [ -z "$child" ] || kill "$child" 2>/dev/null
  [ -n "$ended" ] || log session-end
  ended=1
  exit 0
}
trap finish HUP TERM INT
log session-start shell
echo ""
echo "Welcome to $NAME (drover test device)"
while :; do
  printf '%s' "$PROMPT"
  IFS= read -r line || break
  line=$(printf '%s' "$line" | tr -d '\r')
  case "$line" in
    exit|logout) if [ "$PROMPT" = "$NAME#" ]; then break; fi; PROMPT="$NAME#"; continue ;;
  esac
  log cmd-start "$line"
  answer "$line"
  log cmd-end "$line"
done
finish
