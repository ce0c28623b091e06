/* placeholder until the vault lands */
#ifndef CLERK_VAULT_H
#define CLERK_VAULT_H
static inline char *clerk_vault_stored_secret_key(void) { return NULL; }
static inline void clerk_vault_init(void) {}
#endif
