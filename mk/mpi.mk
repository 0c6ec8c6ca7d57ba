# MPI (docs/DISTRIBUTED.md): when an MPI C compiler wrapper is present
# (scripts/setup.sh installs Open MPI), the CLI is built with MPI so that
# `retnet train` runs data-parallel under mpirun; without, a plain build.
# The library never links MPI: only cli/dist.c uses it. `make MPICC=`
# forces a plain build.
MPICC ?= mpicc
MPI_FOUND := $(if $(MPICC),$(shell $(MPICC) --showme:version >/dev/null 2>&1 && echo yes))
ifeq ($(MPI_FOUND),yes)
$(BUILD)/retnet: private override CFLAGS += -DRETNET_MPI $(shell $(MPICC) --showme:compile)
$(BUILD)/retnet: private LDLIBS += $(shell $(MPICC) --showme:link)
endif

# The CLI is relinked when MPI appears or goes (a stamp named after the state).
MPI_STAMP = $(BUILD)/.mpi-$(if $(MPI_FOUND),yes,no)
$(BUILD)/retnet: $(MPI_STAMP)
$(MPI_STAMP):
	@mkdir -p $(dir $@) && rm -f $(BUILD)/.mpi-* && touch $@
