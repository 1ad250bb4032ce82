"""Programs that run on the cluster's VMs (written there by cloud-init). Standard library only: a VM's
Python has nothing else."""
