#!/bin/sh
# Drives the door-strike relay's pin to its inactive level, with no Python and no running unit:
# deploy/intercom.service runs it after the unit's process ends for any reason (ExecStopPost),
# a SIGKILL in the middle of a pulse included, which would otherwise leave the pin where it was
# and the strike energised. deploy/install.sh installs it as /usr/local/sbin/intercom-strike-off.
#
#   intercom-strike-off [--env-file FILE] [--config-line]
#
#   --env-file FILE  the unit's settings (default: /etc/intercom/intercom.env): the pin is
#                    INTERCOM_RELAY_PIN (26 when the file does not set it; empty: no relay, nothing
#                    is done) and its polarity INTERCOM_RELAY_ACTIVE_LOW (false when not set)
#   --config-line    print the config.txt line that drives that pin inactive at boot
#                    (gpio=26=op,dl), nothing when there is no relay; drive nothing
#
# The file is read, never run: each value is the last line that sets it, as in the unit (quotes,
# `export` and trailing comments as python-dotenv takes them). A value the unit would refuse
# drives nothing and exits 1 with the variable named: the unit never ran with it, so the pin it
# last drove is not known, and a guess could energise the strike (an active-low relay driven low)
# or drive a pin that something else is wired to.
#
# The pin is driven by Raspberry Pi's pinctrl when there is one (it sets the registers: the level
# stays after it exits, on any kernel), else by libgpiod's gpioset: Raspberry Pi kernels keep a
# released line's level, while a mainline kernel (Debian's own; before 6.11, or without
# pinctrl_bcm2835.persist_gpio_outputs) turns it back into an input when gpioset exits: not driven,
# which the usual relay modules read as off, but not held there.
set -eu

DEFAULT_PIN=26 # intercom/appliance/settings.py's relay_pin and relay_active_low defaults
env_file=/etc/intercom/intercom.env
config_line=no

say() { printf 'intercom-strike-off: %s\n' "$*" >&2; }
usage() { sed -n '2,/^set -eu/{/^#/s/^# \{0,1\}//p}' "$0"; }

while [ $# -gt 0 ]; do
  case $1 in
    --env-file)
      [ $# -ge 2 ] || { say "--env-file needs a file"; exit 2; }
      env_file=$2
      shift 2
      ;;
    --config-line) config_line=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) say "unknown option $1 (see --help)"; exit 2 ;;
  esac
done

# The value of the variable $1 in the env file, unquoted, after a "=" that tells a value set (even
# to nothing) from a variable the file does not set (no output at all).
setting() {
  raw=$(sed -n -e 's/\r$//' \
    -e "s/^[[:space:]]*\(export[[:space:]][[:space:]]*\)\{0,1\}$1[[:space:]]*=[[:space:]]*/=/p" "$env_file" |
    sed -n '$p')
  case $raw in
    '') return 0 ;;
    =\"*) raw=${raw#=\"}; value=${raw%%\"*} ;;
    =\'*) raw=${raw#=\'}; value=${raw%%\'*} ;;
    *)
      value=${raw#=}
      value=${value%%[[:space:]]#*}                 # a comment after the value
      value=${value%"${value##*[![:space:]]}"}      # and the blanks before it
      ;;
  esac
  value=${value#"${value%%[![:space:]]*}"} # pydantic takes " 26 " as 26
  printf '=%s\n' "$value"
}

if [ ! -r "$env_file" ]; then
  # Unreadable is not "no relay": the unit that ran had some pin, most likely the default one.
  say "cannot read $env_file: no pin driven"
  exit 1
fi
pin=$(setting INTERCOM_RELAY_PIN)
active_low=$(setting INTERCOM_RELAY_ACTIVE_LOW)
pin=${pin:-=$DEFAULT_PIN}
pin=${pin#=}
if [ -z "$pin" ]; then
  [ "$config_line" = yes ] || say "no relay (INTERCOM_RELAY_PIN is empty): nothing to drive"
  exit 0
fi
case $pin in
  +*) pin=${pin#+} ;;
esac
case $pin in
  *[!0-9]*) number= ;;
  *) number=$(printf '%s\n' "$pin" | sed 's/^0*\(.\)/\1/') ;;
esac
if [ -z "$number" ] || [ "$number" -lt 2 ] || [ "$number" -gt 27 ]; then
  say "INTERCOM_RELAY_PIN is '$pin', not a GPIO of 2-27 (in $env_file): no pin driven"
  exit 1
fi
case ${active_low:-=false} in
  =[Tt][Rr][Uu][Ee] | =[Yy][Ee][Ss] | =[Oo][Nn] | =[Tt] | =[Yy] | =1) level=high ;;
  =[Ff][Aa][Ll][Ss][Ee] | =[Nn][Oo] | =[Oo][Ff][Ff] | =[Ff] | =[Nn] | =0) level=low ;;
  *)
    say "INTERCOM_RELAY_ACTIVE_LOW is '${active_low#=}', not true or false (in $env_file): no pin driven"
    exit 1
    ;;
esac
if [ "$level" = high ]; then drive=dh value=1; else drive=dl value=0; fi

if [ "$config_line" = yes ]; then
  printf 'gpio=%s=op,%s\n' "$number" "$drive"
  exit 0
fi

if command -v pinctrl >/dev/null 2>&1; then
  pinctrl set "$number" op "$drive"
elif command -v gpioset >/dev/null 2>&1; then
  case $(gpioset --version 2>/dev/null) in
    *"(libgpiod) v1."*)
      # The chip and offset of the line named GPIO26 (on a Pi 5 the header is not gpiochip0 on
      # every kernel); gpiochip0 and the number when the device tree names no lines.
      line=$(gpiofind "GPIO$number" 2>/dev/null) || line="gpiochip0 $number"
      gpioset "${line% *}" "${line##* }=$value"
      ;;
    *) gpioset -t 0 "GPIO$number=$value" ;; # libgpiod 2: by name; a last period of 0 exits
  esac
else
  for device in /dev/gpiochip* /dev/gpiomem*; do
    if [ -e "$device" ]; then
      say "neither pinctrl nor gpioset here to drive GPIO$number $level (apt install gpiod)"
      exit 1
    fi
  done
  say "no GPIO here: GPIO$number not driven"
  exit 0
fi
say "drove GPIO$number $level: the door strike's relay is off"
