#include "msg/addrlist.h"

#include <gmime/gmime.h>

static void addrlist_init(void)
{
	static int done;
	if (!done) {
		g_mime_init();
		done = 1;
	}
}

static int addrlist_walk(InternetAddressList *list, addrlist_cb *cb, void *arg)
{
	int n = 0, count = internet_address_list_length(list);
	for (int i = 0; i < count; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			n += addrlist_walk(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)),
					   cb, arg);
			continue;
		}
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		if (addr != NULL && addr[0] != '\0') {
			cb(arg, addr);
			n++;
		}
	}
	return n;
}

int addrlist_each(const char *value, addrlist_cb *cb, void *arg)
{
	addrlist_init();
	InternetAddressList *list = internet_address_list_parse(NULL, value);
	if (list == NULL)
		return 0;
	int n = addrlist_walk(list, cb, arg);
	g_object_unref(list);
	return n;
}
