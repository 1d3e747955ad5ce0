# Build and install EdgePlan: binary, systemd units, sysusers entry, journal catalog, profiles, the default policy
# and shell completions.
# `make install DESTDIR=/tmp/stage` stages the same tree elsewhere.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
CONFIGURATION ?= release
# Release builds carry the Swift runtime inside the binary: no toolchain needed on the robot, and the
# daemon touches fewer shared pages (about 26 MiB resident instead of 30).
STATIC ?= $(if $(filter release,$(CONFIGURATION)),--static-swift-stdlib,)

BINDIR = $(PREFIX)/bin
UNITDIR = $(PREFIX)/lib/systemd/system
SYSUSERSDIR = $(PREFIX)/lib/sysusers.d
CATALOGDIR = $(PREFIX)/lib/systemd/catalog
DATADIR = $(PREFIX)/share/edgeplan
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR = $(PREFIX)/share/fish/vendor_completions.d

.PHONY: build install uninstall

build:
	swift build -c $(CONFIGURATION) $(STATIC) --product edgeplan

install: build
	install -Dm755 .build/$(CONFIGURATION)/edgeplan $(DESTDIR)$(BINDIR)/edgeplan
	# The unit names the binary where this install puts it.
	sed 's|/usr/local/bin/edgeplan|$(BINDIR)/edgeplan|g' systemd/edgeplan.service > edgeplan.service.tmp
	install -Dm644 edgeplan.service.tmp $(DESTDIR)$(UNITDIR)/edgeplan.service
	rm -f edgeplan.service.tmp
	install -Dm644 systemd/edgeplan.socket $(DESTDIR)$(UNITDIR)/edgeplan.socket
	install -Dm644 systemd/edgeplan.sysusers $(DESTDIR)$(SYSUSERSDIR)/edgeplan.conf
	install -Dm644 systemd/edgeplan.catalog $(DESTDIR)$(CATALOGDIR)/edgeplan.catalog
	mkdir -p $(DESTDIR)$(DATADIR)/profiles
	cp -R profiles/. $(DESTDIR)$(DATADIR)/profiles/
	# Shell completions, generated from the same command definitions as --help.
	mkdir -p $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	.build/$(CONFIGURATION)/edgeplan --generate-completion-script bash > $(DESTDIR)$(BASHCOMPDIR)/edgeplan
	.build/$(CONFIGURATION)/edgeplan --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_edgeplan
	.build/$(CONFIGURATION)/edgeplan --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/edgeplan.fish
	# An operator's edited policy is never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/edgeplan/policy.yaml || install -Dm644 policies/default.yaml $(DESTDIR)$(SYSCONFDIR)/edgeplan/policy.yaml

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/edgeplan $(DESTDIR)$(UNITDIR)/edgeplan.service $(DESTDIR)$(UNITDIR)/edgeplan.socket $(DESTDIR)$(SYSUSERSDIR)/edgeplan.conf $(DESTDIR)$(CATALOGDIR)/edgeplan.catalog
	rm -f $(DESTDIR)$(BASHCOMPDIR)/edgeplan $(DESTDIR)$(ZSHCOMPDIR)/_edgeplan $(DESTDIR)$(FISHCOMPDIR)/edgeplan.fish
	rm -rf $(DESTDIR)$(DATADIR)
