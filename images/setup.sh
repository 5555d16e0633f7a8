#!/bin/sh
# Image-level setup of kompi's runtime image, shared by images/Dockerfile and testbed/testbed.sh (mmdebstrap).
# Runs as root inside the image root, after the packages of images/packages.txt are installed.
set -eu

MPI_USER=mpi
MPI_ID=1000

# The non-root MPI user (securityContext runAsUser/fsGroup 1000). A base image may already hold uid or gid
# 1000 under another name (ubuntu:24.04 has "ubuntu"); that account gives way.
other=$(getent passwd "$MPI_ID" | cut -d: -f1) || true
if [ -n "$other" ] && [ "$other" != "$MPI_USER" ]; then userdel "$other"; fi
other=$(getent group "$MPI_ID" | cut -d: -f1) || true
if [ -n "$other" ] && [ "$other" != "$MPI_USER" ]; then groupdel "$other"; fi
getent group "$MPI_USER" >/dev/null || groupadd --gid "$MPI_ID" "$MPI_USER"
getent passwd "$MPI_USER" >/dev/null ||
  useradd --uid "$MPI_ID" --gid "$MPI_ID" --home-dir "/home/$MPI_USER" --create-home --shell /bin/bash "$MPI_USER"
# useradd leaves the password "!" (locked), and an sshd running as root refuses public-key logins to locked
# accounts; "*" still allows no password login.
usermod --password '*' "$MPI_USER"

# sshd's privilege-separation directory: it must exist, owned by root and not writable by others.
mkdir -p /run/sshd
chmod 0755 /run/sshd

# No host keys in the image: every container would share them. kompi init generates ephemeral ones.
rm -f /etc/ssh/ssh_host_*
