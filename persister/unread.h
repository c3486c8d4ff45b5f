/* unread.h: unread events. A change marks users (their read) or rooms (a new message)
 * dirty; a timer computes the counts of every dirty user in one query and publishes
 * one unread event per user on natter.user.<app>.<user>. */
#ifndef PS_UNREAD_H
#define PS_UNREAD_H

#include "persister.h"

ps_unread *ps_unread_create(ps_ctx *ctx);
/* Closes the timer and frees the dirty sets. Destroy the read connection first. */
void ps_unread_destroy(ps_unread *u);
/* user's count for room changed (their read mark moved). */
void ps_unread_user(ps_unread *u, const char *app, const char *user, const char *room);
/* room got messages: every member's count for it changed. */
void ps_unread_room(ps_unread *u, const char *app, const char *room);

#endif
