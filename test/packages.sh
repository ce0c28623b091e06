# test/packages.sh: the Debian packages a harness needs, installed when
# missing (sourced by test/run.sh and test/package.sh; as root).

say() { printf '== %s\n' "$*"; }

# install_packages NAME...: apt-get install those not installed yet
install_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}
